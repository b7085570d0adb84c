"""`vocoder bench`: speed benchmarks whose figures go to docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer

from vocoder.benchmark import GenerationBenchSettings, bench_generation, plot_generation
from vocoder.benchmark_student import bench_student
from vocoder.cli.app import app
from vocoder.config import load_config

bench_app = typer.Typer(help="Speed benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("generation")
def generation(
    config: str = typer.Option("seed_size", help="config YAML or recipe name; a random model of its shape"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    repeats: int = typer.Option(3, min=1, help="timed runs per figure (median, min, max reported)"),
    naive_steps: int = typer.Option(64, min=1, help="samples generated per naive run"),
    fast_steps: int = typer.Option(2000, min=1, help="samples generated per fast run (batch 1)"),
    batch_steps: int = typer.Option(1000, min=1, help="samples per utterance in the batch-8 run"),
    threads: int | None = typer.Option(None, min=1, help="torch intra-op threads (default: torch's choice)"),
    student_seconds: float = typer.Option(10.0, min=0.01, help="utterance length of the student run (batch 1)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on the last line"),
    plot: Path | None = typer.Option(None, help="also write a PNG of samples/s against batch size"),
    precision: str = typer.Option("fp32", help="weights of the fused CPU kernel: fp32 (exact) or fp16"),
) -> None:
    """Naive vs Fast-WaveNet (fused CPU kernel and plain PyTorch) generation speed, batch 1, 8 and 32, and the
    Parallel WaveNet student's."""
    if threads:
        torch.set_num_threads(threads)
    settings = GenerationBenchSettings(
        naive_steps=naive_steps,
        fast_steps=fast_steps,
        batch_steps=batch_steps,
        repeats=repeats,
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )
    loaded = load_config(config)
    report = bench_generation(loaded, settings)
    report.update(bench_student(loaded, report["fast_samples_per_s"], student_seconds, repeats, device))  # type: ignore[arg-type]
    width = max(map(len, report))
    for key, value in report.items():
        typer.echo(f"{key:<{width}}  {value}")
    if plot is not None:
        plot_generation(report, plot)
    if as_json:
        typer.echo(json.dumps(report))


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
    from vocoder.train.benchmark import bench_training

    if threads:
        torch.set_num_threads(threads)
    report = bench_training(load_config(config), device, steps, repeats)
    width = max(map(len, report))
    for key, value in report.items():
        typer.echo(f"{key:<{width}}  {value}")
    if as_json:
        typer.echo(json.dumps(report))
