"""`vocoder bench`: speed benchmarks whose figures go to docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.vocabulary import PRECISIONS, SPLITS

bench_app = typer.Typer(help="Speed and quality benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


RATE = "_samples_per_s"


def _print_report(report: dict[str, object]) -> None:
    """A table of every measured rate (median, min, max samples/s), then the run's other facts one per line."""
    rates = [key.removesuffix(RATE) for key in report if key.endswith(RATE)]
    if rates:
        width = max(len(name) for name in rates)
        typer.echo(f"{'what':<{width}}  {'samples/s':>14}  {'min':>14}  {'max':>14}")
        for name in rates:
            cells = [report.get(f"{name}{RATE}{suffix}", "") for suffix in ("", "_min", "_max")]
            typer.echo(f"{name:<{width}}  " + "  ".join(f"{c:>14,.1f}" if c != "" else f"{c:>14}" for c in cells))
        typer.echo("")
    facts = [key for key in report if not key.endswith((RATE, f"{RATE}_min", f"{RATE}_max"))]
    width = max(map(len, facts), default=0)
    for key in facts:
        typer.echo(f"{key:<{width}}  {report[key]}")


STUDENT_FIGURES = 2
"""The student's figures after the teacher's: the generator users get and the PyTorch forward (one more with
--onnx: the export run by onnxruntime)."""


class _Progress:
    """One line on stderr per measured figure (stdout stays the report, and --json's last line parseable)."""

    def __init__(self, total: int, repeats: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        typer.echo(f"timing {total} figures, {repeats} runs each; the naive one takes longest", err=True)

    def __call__(self, name: str, rates: list[float]) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        typer.echo(
            f"[{self.done}/{self.total}] {name}: {statistics.median(rates):,.1f} samples/s ({elapsed:.0f} s elapsed)",
            err=True,
        )


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 2:
        raise typer.BadParameter(f"expected comma-separated integers >= 2, found {text!r}", param_hint="--batch-sizes")
    return sizes


@bench_app.command("generation")
def generation(
    config: str = typer.Option("seed_size", help="config YAML or recipe name; a random model of its shape"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    repeats: int = typer.Option(3, min=1, help="timed runs per figure (median, min, max reported)"),
    naive_steps: int = typer.Option(64, min=1, help="samples generated per naive run"),
    fast_steps: int = typer.Option(2000, min=1, help="samples generated per fast run (batch 1)"),
    batch_steps: int = typer.Option(1000, min=1, help="samples per utterance in the batch-8 run (scaled by 8/N)"),
    batch_sizes: str = typer.Option("8,32", help="comma-separated batch sizes timed besides batch 1"),
    threads: int | None = typer.Option(None, min=1, help="torch intra-op threads (default: torch's choice)"),
    student_seconds: float = typer.Option(10.0, min=0.01, help="utterance length of the student run (batch 1)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
    plot: Path | None = typer.Option(None, help="also write a PNG of samples/s against batch size"),
    precision: str = typer.Option("fp32", help="weights of the fused CPU kernel: fp32 (exact), fp16 or int8"),
    backend: str = typer.Option("auto", help="the teacher's fast figures: auto, cpu-kernel, torch, cuda-graph, triton"),
    onnx: bool = typer.Option(False, help="also time the student exported to ONNX, run by onnxruntime"),
) -> None:
    """Naive vs Fast-WaveNet (fused CPU kernel or CUDA graphs, and plain PyTorch) generation speed at batch 1 and
    --batch-sizes, and the Parallel WaveNet student's (fused C++ forward, PyTorch, with --onnx onnxruntime)."""
    import torch

    from vocoder.bench.generation import GenerationBenchSettings, bench_generation, figure_count, plot_generation
    from vocoder.bench.student import bench_student
    from vocoder.config import load_config
    from vocoder.vocabulary import check_backend

    check_backend(backend)

    if threads:
        torch.set_num_threads(threads)
    settings = GenerationBenchSettings(
        naive_steps=naive_steps,
        fast_steps=fast_steps,
        batch_steps=batch_steps,
        batch_sizes=_batch_sizes(batch_sizes),
        repeats=repeats,
        device=device,
        precision=precision,  # type: ignore[arg-type]
        backend=backend,  # type: ignore[arg-type]
    )
    loaded = load_config(config)
    progress = _Progress(figure_count(loaded, settings) + STUDENT_FIGURES + onnx, repeats)
    report = bench_generation(loaded, settings, progress)
    fast_rate = report["fast_samples_per_s"]
    student = bench_student(loaded, fast_rate, student_seconds, repeats, device, onnx=onnx, progress=progress)  # type: ignore[arg-type]
    report.update(student)
    _print_report(report)
    if plot is not None:
        plot_generation(report, plot)
    if as_json:
        typer.echo(json.dumps(report))


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    """A comma-separated list of `allowed` names, or a BadParameter naming the first that is not."""
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in allowed:
            raise typer.BadParameter(f"expected comma-separated {' / '.join(allowed)}, found {name!r}", param_hint=flag)
    return names


@bench_app.command("kernel")
def kernel(
    config: str = typer.Option("seed_size", help="config YAML or recipe name; a random teacher of its shape"),
    precisions: str = typer.Option(",".join(PRECISIONS), help=f"comma-separated: {', '.join(PRECISIONS)}"),
    modes: str = typer.Option("1t,split", help="comma-separated: 1t (one thread), split (two), auto (it picks)"),
    steps: int = typer.Option(4000, min=1, help="samples per timed run"),
    repeats: int = typer.Option(3, min=1, help="timed runs per variant (interleaved)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
) -> None:
    """Batch-1 speed of the fused CPU step per precision and thread mode, variants interleaved run by run."""
    from vocoder.bench.kernel import MODES, bench_kernel
    from vocoder.config import load_config

    chosen_precisions = _choices(precisions, PRECISIONS, "--precisions")
    chosen_modes = _choices(modes, tuple(MODES), "--modes")
    report = bench_kernel(load_config(config), chosen_precisions, chosen_modes, steps, repeats)  # type: ignore[arg-type]
    for name, figures in report.items():
        typer.echo(f"{name:12s} {figures['median']:8,d} samples/s  (min {figures['min']:,d}, max {figures['max']:,d})")
    if as_json:
        typer.echo(json.dumps({"config": config, "steps": steps, "repeats": repeats, "rates": report}))


def _seconds(text: str) -> tuple[float, ...]:
    try:
        seconds = tuple(float(part) for part in text.split(","))
    except ValueError:
        seconds = ()
    if not seconds or min(seconds) <= 0:
        raise typer.BadParameter(f"expected comma-separated positive seconds, found {text!r}", param_hint="--seconds")
    return seconds


@bench_app.command("memory")
def memory(
    model: list[str] = typer.Option(["teacher", "student"], "--model", help="model name or path; repeat for several"),
    seconds: str = typer.Option("1,10,100", help="comma-separated utterance lengths"),
    compare: list[Path] = typer.Option(
        [], "--compare", help="another checkout to measure in the same run (e.g. `git archive main` unpacked)"
    ),
    example: Path | None = typer.Option(
        None, help="feature file tiled to each length (default: examples/slt_0004_mel.npz)"
    ),
    chunk_samples: int = typer.Option(1024, min=1, help="samples per streamed chunk"),
    stream_seconds: float = typer.Option(1.0, min=0.0, help="audio streamed after the first chunk before the peak"),
    student_whole: bool = typer.Option(True, help="also synthesize whole utterances with students"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
) -> None:
    """Peak RSS and seconds to the first streamed chunk for each utterance length, one fresh process each."""
    from vocoder.bench.memory import EXAMPLE, ROOT, MemoryBenchSettings, bench_memory, machine, memory_table

    settings = MemoryBenchSettings(
        tuple(model),
        _seconds(seconds),
        (ROOT, *compare),
        example or EXAMPLE,
        chunk_samples,
        stream_seconds,
        student_whole,
    )
    rows = bench_memory(settings)
    typer.echo(memory_table(rows))
    typer.echo("")
    _print_report(machine())
    if as_json:
        typer.echo(json.dumps({"machine": machine(), "rows": rows}))


@bench_app.command("training")
def training(
    config: str = typer.Option("demo_teacher", help="config YAML or recipe name: model and train sections"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    steps: int = typer.Option(5, min=1, help="training steps per timed run"),
    repeats: int = typer.Option(3, min=1, help="timed runs (median, min, max reported)"),
    threads: int | None = typer.Option(None, min=1, help="torch intra-op threads (default: torch's choice)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
) -> None:
    """Teacher training throughput: samples per second through forward, backward and an optimizer step."""
    import torch

    from vocoder.bench.training import bench_training
    from vocoder.config import load_config

    if threads:
        torch.set_num_threads(threads)
    report = bench_training(load_config(config), device, steps, repeats)
    _print_report(report)
    if as_json:
        typer.echo(json.dumps(report))


@bench_app.command("quality")
def quality(
    model: list[str] = typer.Option(
        ...,
        "--model",
        help="model name or path, or LABEL=PATH, optionally @SETTING=VALUE,... for a sampling other than the "
        "model's default (e.g. cool=teacher@temperature=0.8); repeat to compare several",
    ),
    data: list[Path] = typer.Option(
        ..., "--data", help="feature cache of held-out recordings (e.g. data/real/feats/festvox-ru); repeat per source"
    ),
    out: Path = typer.Option(Path("out/quality"), "--out", help="WAVs, spectrogram grids, quality.json"),
    split: str = typer.Option("test", help="which split of each cache to score: test, valid or train"),
    limit: int = typer.Option(8, min=1, help="utterances per source, evenly spread over the split"),
    seed: int = typer.Option(0, help="sampling seed of every model and of Griffin-Lim's initial phases"),
    griffin_lim_iterations: int = typer.Option(64, "--griffin-lim-iterations", min=1),
    dnsmos: bool = typer.Option(True, help="also score DNSMOS OVRL (about 0.5 s per file)"),
    spectrograms: int = typer.Option(2, min=0, help="spectrogram grids per source"),
    gain_db: float = typer.Option(
        0.0,
        "--gain-db",
        help="scale every recording by this many dB first, its mel moved to match (as `vocoder extract` would find "
        "it): how each system meets quieter or louder recordings than the corpus's peak-normalised ones",
    ),
    tilt: float = typer.Option(
        0.0,
        min=-0.9,
        max=0.9,
        help="colour every recording by the filter 1 - TILT z^-1 at its own peak (positive: brighter, negative: "
        "darker), its features extracted again: how each system meets another microphone",
    ),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
) -> None:
    """Copy synthesis of held-out recordings by each model, beside Griffin-Lim from the same mel and the 8-bit
    mu-law ceiling, in one run: PESQ-WB, STOI, MCD, DNSMOS OVRL and each model's ratio to Griffin-Lim."""
    from vocoder.api import load
    from vocoder.bench.quality import QualitySettings, bench_quality, summary_table
    from vocoder.generate.sampling import parse_settings

    if split not in SPLITS:
        raise typer.BadParameter(f"expected one of {list(SPLITS)}, found {split!r}", param_hint="--split")
    settings = QualitySettings(split, limit, seed, griffin_lim_iterations, dnsmos, spectrograms, gain_db, tilt)
    vocoders = []
    for entry in model:
        named, _, sampling = entry.partition("@")
        label, _, path = named.rpartition("=")
        loaded = load(path, device)
        loaded.name = label or loaded.name
        loaded.default_sampling = loaded.sampling(**parse_settings(sampling, f"--model {entry}"))
        vocoders.append(loaded)
    report = bench_quality(vocoders, data, out, settings)
    table = summary_table(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "summary.md").write_text(table + "\n")
    typer.echo(table)
    typer.echo("sampling: " + "; ".join(f"{name}: {label}" for name, label in report["sampling"].items()))
    typer.echo(f"spectrograms and WAVs: {out}")
    if as_json:
        typer.echo(json.dumps(report))
