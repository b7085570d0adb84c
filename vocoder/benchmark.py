"""Generation speed of a randomly initialised model of a config: naive vs Fast WaveNet, batch 1 and 8.

Speed does not depend on the weights' values, so a random model measures what a trained one of that shape would.
Each figure is the median of `repeats` timed runs; all runs of one call happen in the same process, so their ratios
are comparable even on a noisy shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vocoder.config import Config
from vocoder.generate import FastWaveNet, Sampling, generate_naive
from vocoder.models.wavenet import WaveNet


@dataclass(frozen=True)
class GenerationBenchSettings:
    naive_steps: int = 64
    fast_steps: int = 2000
    batch_steps: int = 1000
    batch_size: int = 8
    repeats: int = 3
    device: str = "cpu"
    seed: int = 0


def _timed_rates(run: Callable[[], None], samples: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates.append(samples / (time.perf_counter() - start))
    return rates


def bench_generation(config: Config, settings: GenerationBenchSettings) -> dict[str, object]:
    """Samples per second (aggregate over the batch) for each generator; medians plus the min and max."""
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    model = WaveNet(config).eval().to(device)
    fast = FastWaveNet(model)
    sampling = Sampling(seed=settings.seed)

    def inputs(batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        local = torch.randn(batch, model.local_channels, steps, device=device)
        speakers = torch.zeros(batch, dtype=torch.long, device=device) if config.speakers else None
        return local, speakers, sampling.uniforms(batch, steps)

    # The naive generator is timed in its steady state: primed with a receptive field of samples, so every
    # timed step runs the network over a full window, as it does for all but the first few ms of an utterance.
    window = model.receptive_field
    naive_in = inputs(1, window + settings.naive_steps)
    prime = torch.randint(0, config.audio.classes, (1, window), device=device)
    fast_in = inputs(1, settings.fast_steps)
    batch_in = inputs(settings.batch_size, settings.batch_steps)
    fast.generate(*inputs(1, 64)[:2], sampling, inputs(1, 64)[2])  # warm-up: allocator, kernels
    rates = {
        "naive": _timed_rates(
            lambda: generate_naive(model, *naive_in[:2], sampling, naive_in[2], prime=prime),
            settings.naive_steps,
            settings.repeats,
        ),
        "fast": _timed_rates(
            lambda: fast.generate(*fast_in[:2], sampling, fast_in[2]), settings.fast_steps, settings.repeats
        ),
        f"fast_batch{settings.batch_size}": _timed_rates(
            lambda: fast.generate(*batch_in[:2], sampling, batch_in[2]),
            settings.batch_steps * settings.batch_size,
            settings.repeats,
        ),
    }
    report: dict[str, object] = {}
    for name, values in rates.items():
        report[f"{name}_samples_per_s"] = round(statistics.median(values), 1)
        report[f"{name}_samples_per_s_min"] = round(min(values), 1)
        report[f"{name}_samples_per_s_max"] = round(max(values), 1)
    report["speedup_fast_vs_naive"] = round(statistics.median(rates["fast"]) / statistics.median(rates["naive"]), 2)
    report.update(
        config=config.name,
        receptive_field=model.receptive_field,
        receptive_field_ms=round(model.receptive_field_ms, 2),
        params=model.parameter_count(),
        device=str(device),
        threads=torch.get_num_threads(),
        repeats=settings.repeats,
        naive_steps=settings.naive_steps,
        fast_steps=settings.fast_steps,
        batch_steps=settings.batch_steps,
        torch=torch.__version__,
    )
    return report
