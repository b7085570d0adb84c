"""Generation speed of a randomly initialised model of a config: naive vs Fast WaveNet (the best available path: the
fused CPU kernel on CPU, CUDA graphs on a GPU; and the plain PyTorch one), batch 1 and each of `batch_sizes`.

Speed does not depend on the weights' values, so a random model measures what a trained one of that shape would.
A model with linear prediction (`model.lpc_order > 0`) generates from random frames' predictor coefficients, and the
same shape without it is timed as `fast_without_lpc`, interleaved with `fast`: the prediction's cost as a ratio.
On CUDA the persistent Triton kernel (`triton`, `TritonWaveNet`) is timed too, at batch 1 and each batch size,
interleaved with `fast` (CUDA graphs under `auto`), so `auto`'s choice (`TRITON_AUTO_MAX_BATCH`) can be read off;
where it cannot run, `triton_unavailable` says why.
Each figure is the median of `repeats` timed runs; all runs of one call happen in the same process, so their ratios
are comparable even on a noisy shared machine.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vocoder.bench.timing import FigureCallback, device_name, rate_summary, timed_rates
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.generate import FastWaveNet, KernelWaveNet, Sampling, TritonWaveNet, fast_generator, generate_naive
from vocoder.generate.result import BlockGenerator
from vocoder.models.wavenet import WaveNet
from vocoder.vocabulary import Backend, Precision


@dataclass(frozen=True)
class Inputs:
    """One timed generation's inputs."""

    local: torch.Tensor
    speakers: torch.Tensor | None
    uniforms: torch.Tensor
    lpc: torch.Tensor | None
    """An LPC model's predictor coefficients; None for any other."""


@dataclass(frozen=True)
class GenerationBenchSettings:
    naive_steps: int = 64
    fast_steps: int = 2000
    batch_steps: int = 1000
    """Samples per utterance at batch 8; a batch of N generates `batch_steps * 8 / N` (at least 100) per utterance."""
    batch_sizes: tuple[int, ...] = (8, 32)
    precision: Precision = "fp32"
    backend: Backend = "auto"
    """The `fast` figure's backend (`vocoder.generate.backends`); `fast_torch` is always the plain loop."""
    repeats: int = 3
    device: str = "cpu"
    seed: int = 0
    triton: bool | None = None
    """Time the Triton kernel beside `fast` (with fp16 weights where `precision` is fp16); None: on CUDA only (on a
    CPU it runs only interpreted, for tests)."""

    @property
    def times_triton(self) -> bool:
        return torch.device(self.device).type == "cuda" if self.triton is None else self.triton


def figure_count(config: Config, settings: GenerationBenchSettings) -> int:
    """Figures `bench_generation` measures: naive, fast, fast-torch, fast-torch at the smallest batch, each batch,
    for an LPC model fast without LPC, and (on CUDA) the Triton kernel at batch 1 and each batch."""
    triton = (1 + len(settings.batch_sizes)) * settings.times_triton
    return 4 + len(settings.batch_sizes) + (config.model.lpc_order > 0) + triton


def without_lpc(config: Config) -> Config:
    """The same model shape without linear prediction."""
    return config.model_copy(update={"model": config.model.model_copy(update={"lpc_order": 0})})


def bench_generation(
    config: Config, settings: GenerationBenchSettings, progress: FigureCallback | None = None
) -> dict[str, object]:
    """Samples per second (aggregate over the batch) for each generator; medians plus the min and max. `progress`
    hears of each figure as it is measured."""
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    model = WaveNet(config).eval().to(device)
    fast = fast_generator(model, settings.backend, settings.precision)
    fast_torch = FastWaveNet(model)
    triton, triton_unavailable = None, None
    if settings.times_triton:
        try:
            triton = fast_generator(model, "triton", "fp16" if settings.precision == "fp16" else "fp32")
        except VocoderError as error:
            triton_unavailable = str(error)
    lpc = config.model.lpc_order > 0
    plain = (  # the same shape without linear prediction, for an LPC model
        fast_generator(WaveNet(without_lpc(config)).eval().to(device), settings.backend, settings.precision)
        if lpc
        else None
    )
    sampling = Sampling.recommended(config.sampling, settings.seed)  # as a served model samples
    hop = config.features.hop_length

    def inputs(batch: int, steps: int) -> Inputs:
        """Random conditioning, speakers, uniforms and (an LPC model's) predictor coefficients of random frames."""
        local = torch.randn(batch, model.local_channels, steps, device=device)
        speakers = torch.zeros(batch, dtype=torch.long, device=device) if config.speakers else None
        frames = torch.randn(batch, -(-steps // hop), config.features.dim, device=device) - 2  # log-mel-like
        return Inputs(local, speakers, sampling.uniforms(batch, steps), model.lpc(frames) if lpc else None)

    def generation(generator: BlockGenerator, given: Inputs) -> Callable[[], object]:
        coefficients = given.lpc if generator.weights.lpc_order else None
        return lambda: generator.generate(given.local, given.speakers, sampling, given.uniforms, lpc=coefficients)

    # The naive generator is timed in its steady state: primed with a receptive field of samples, so every
    # timed step runs the network over a full window, as it does for all but the first few ms of an utterance.
    window = model.receptive_field
    naive_in = inputs(1, window + settings.naive_steps)
    prime = torch.randint(0, config.audio.classes, (1, window), device=device)
    fast_in = inputs(1, settings.fast_steps)
    batch_steps = {size: max(100, settings.batch_steps * 8 // size) for size in settings.batch_sizes}
    batch_in = {size: inputs(size, steps) for size, steps in batch_steps.items()}
    torch_batch = min(settings.batch_sizes)  # the plain loop is timed at the smallest batch only: it is slow
    warm = [(fast_torch, 1), (fast, 1), *((fast, size) for size in settings.batch_sizes)]
    warm += [] if plain is None else [(plain, 1)]
    warm += [] if triton is None else [(triton, 1), *((triton, size) for size in settings.batch_sizes)]
    for generator, size in warm:
        generation(generator, inputs(size, 64))()  # warm-up: kernels, graph capture
    rates: dict[str, list[float]] = {}

    def timed(runs: dict[str, tuple[Callable[[], object], int]]) -> None:
        """Time `runs` interleaved (see `timed_rates`) and report each figure."""
        for name, values in timed_rates(runs, settings.repeats, device).items():
            rates[name] = values
            if progress is not None:
                progress(name, values)

    naive = lambda: generate_naive(  # noqa: E731
        model, naive_in.local, naive_in.speakers, sampling, naive_in.uniforms, prime=prime, lpc=naive_in.lpc
    )
    timed({"naive": (naive, settings.naive_steps)})
    fast_runs = {"fast": (generation(fast, fast_in), settings.fast_steps)}
    if plain is not None:  # interleaved with `fast`: the prediction's cost as a ratio
        fast_runs["fast_without_lpc"] = (generation(plain, fast_in), settings.fast_steps)
    if triton is not None:
        fast_runs["triton"] = (generation(triton, fast_in), settings.fast_steps)
    timed(fast_runs)
    timed({"fast_torch": (generation(fast_torch, fast_in), settings.fast_steps)})
    timed(
        {
            f"fast_torch_batch{torch_batch}": (
                generation(fast_torch, batch_in[torch_batch]),
                batch_steps[torch_batch] * torch_batch,
            )
        }
    )
    for size, batch in batch_in.items():
        runs = {f"fast_batch{size}": (generation(fast, batch), batch_steps[size] * size)}
        if triton is not None:
            runs[f"triton_batch{size}"] = (generation(triton, batch), batch_steps[size] * size)
        timed(runs)
    report: dict[str, object] = rate_summary(rates)
    report["speedup_fast_vs_naive"] = round(statistics.median(rates["fast"]) / statistics.median(rates["naive"]), 2)
    report["speedup_fast_vs_fast_torch"] = round(
        statistics.median(rates["fast"]) / statistics.median(rates["fast_torch"]), 2
    )
    if lpc:
        report["speed_with_lpc_vs_without"] = round(
            statistics.median(rates["fast"]) / statistics.median(rates["fast_without_lpc"]), 3
        )
    if triton is not None:
        report["speedup_triton_vs_fast"] = round(
            statistics.median(rates["triton"]) / statistics.median(rates["fast"]), 2
        )
        report["triton_precision"] = triton.precision
    elif triton_unavailable is not None:
        report["triton_unavailable"] = triton_unavailable
    report["realtime_factor"] = round(statistics.median(rates["fast"]) / config.audio.sample_rate, 3)
    report.update(
        fast_generator=type(fast).__name__,
        fast_precision=fast.precision if isinstance(fast, KernelWaveNet | TritonWaveNet) else "fp32",
        device_name=device_name(device),
        config=config.name,
        sample_rate=config.audio.sample_rate,
        receptive_field=model.receptive_field,
        receptive_field_ms=round(model.receptive_field_ms, 2),
        params=model.parameter_count(),
        device=str(device),
        threads=torch.get_num_threads(),
        repeats=settings.repeats,
        naive_steps=settings.naive_steps,
        fast_steps=settings.fast_steps,
        batch_steps=batch_steps,
        torch=torch.__version__,
    )
    return report


def plot_generation(report: dict[str, object], path: Path) -> None:
    """Aggregate samples/s against batch size for each generator (median, min-max bars) as a PNG, for docs/."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = {
        "fast": f"fast ({report['fast_generator']})",
        "fast_torch": "fast-torch (FastWaveNet)",
        "naive": "naive",
        "triton": "triton (TritonWaveNet)",
    }
    series: dict[str, list[tuple[int, float, float, float]]] = {}
    for key in report:
        match = re.fullmatch(r"(fast_torch|fast|naive|triton)(?:_batch(\d+))?_samples_per_s", key)
        if match:
            median, low, high = (float(report[key + suffix]) for suffix in ("", "_min", "_max"))  # type: ignore[arg-type]
            series.setdefault(match[1], []).append((int(match[2] or 1), median, low, high))
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, points in series.items():
        batches, medians, lows, highs = zip(*sorted(points), strict=True)
        errors = [
            [m - lo for m, lo in zip(medians, lows, strict=True)],
            [h - m for m, h in zip(medians, highs, strict=True)],
        ]
        axes.errorbar(batches, medians, yerr=errors, marker="o", capsize=3, label=labels[name])
    rate = int(report.get("sample_rate", 16000))  # type: ignore[call-overload]
    axes.axhline(rate, color="grey", linestyle="--", linewidth=1, label=f"real time at {rate / 1000:g} kHz")
    axes.set(xscale="log", yscale="log", xlabel="batch size (utterances)", ylabel="samples / s (aggregate)")
    if report["device"] == "cuda":
        title = f"{report['config']} teacher generation, {report.get('device_name', 'cuda')}"
    else:
        title = f"{report['config']} teacher, cpu, {report['threads']} threads, {report.get('fast_precision')} weights"
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
