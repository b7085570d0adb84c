"""Batch-1 speed of the fused CPU step (`KernelWaveNet`) per precision and thread mode, in one process
(`vocoder bench kernel`).

`vocoder bench generation` also times the naive and PyTorch generators and batches; this times only the kernel
variants, interleaved run by run, so their ratios are comparable on a shared machine. A variant is
`precision/mode`: mode `1t` is one thread, `split` one utterance split over two threads every step, `auto` the
generator's own choice (split=None: it times both and keeps the faster).
"""

from __future__ import annotations

import statistics

import torch

from vocoder.bench.timing import timed_rates
from vocoder.config import Config
from vocoder.generate import KernelWaveNet, Sampling
from vocoder.models.wavenet import WaveNet
from vocoder.vocabulary import Precision

MODES = {"1t": False, "split": True, "auto": None}
"""Thread mode -> `KernelWaveNet`'s `split`."""


def bench_kernel(
    config: Config, precisions: list[Precision], modes: list[str], steps: int, repeats: int
) -> dict[str, dict[str, int]]:
    """Samples per second (median, min, max of `repeats` interleaved runs of `steps` samples) of each variant, on
    two torch threads (the split mode's two)."""
    torch.manual_seed(0)
    model = WaveNet(config).eval()
    local = torch.randn(1, model.local_channels, steps)
    speakers = torch.zeros(1, dtype=torch.long) if config.speakers else None
    sampling = Sampling(seed=0)
    uniforms = sampling.uniforms(1, steps)
    torch.set_num_threads(2)
    generators = {
        f"{precision}/{mode}": KernelWaveNet(model, precision, split=MODES[mode])
        for precision in precisions
        for mode in modes
    }
    for generator in generators.values():  # warm-up: build, allocator, caches
        generator.generate(local[:, :, :256], speakers, sampling, uniforms[:, :256])
    runs = {
        name: (lambda generator=generator: generator.generate(local, speakers, sampling, uniforms), steps)
        for name, generator in generators.items()
    }
    rates = timed_rates(runs, repeats, torch.device("cpu"))
    return {
        name: {"median": round(statistics.median(r)), "min": round(min(r)), "max": round(max(r))}
        for name, r in rates.items()
    }
