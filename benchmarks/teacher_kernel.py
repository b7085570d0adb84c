"""Batch-1 speed of the fused CPU step (`KernelWaveNet`) per precision and thread mode, in one process.

`vocoder bench generation` also times the naive and PyTorch generators and batches; this script times only the
kernel variants, interleaved run by run, so their ratios are comparable on a shared machine:

    flock /tmp/bench.lock .venv/bin/python benchmarks/teacher_kernel.py --precisions fp32 fp16 --repeats 5

A variant is `precision/mode`: mode `1t` is one thread, `split` one utterance split over two threads every step,
`auto` the generator's own choice (split=None: it times both and keeps the faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from vocoder.config import load_config
from vocoder.generate import KernelWaveNet, Sampling
from vocoder.models.wavenet import WaveNet
from vocoder.vocabulary import PRECISIONS

MODES = {"1t": False, "split": True, "auto": None}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="seed_size")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["1t", "split"])
    parser.add_argument("--steps", type=int, default=4000, help="samples per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (interleaved)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    config = load_config(args.config)
    model = WaveNet(config).eval()
    local = torch.randn(1, model.local_channels, args.steps)
    speakers = torch.zeros(1, dtype=torch.long) if config.speakers else None
    sampling = Sampling(seed=0)
    uniforms = sampling.uniforms(1, args.steps)
    torch.set_num_threads(2)
    generators = {
        f"{precision}/{mode}": KernelWaveNet(model, precision, split=MODES[mode])
        for precision in args.precisions
        for mode in args.modes
    }
    for generator in generators.values():  # warm-up: build, allocator, caches
        generator.generate(local[:, :, :256], speakers, sampling, uniforms[:, :256])
    rates: dict[str, list[float]] = {name: [] for name in generators}
    for _ in range(args.repeats):
        for name, generator in generators.items():
            start = time.perf_counter()
            generator.generate(local, speakers, sampling, uniforms)
            rates[name].append(args.steps / (time.perf_counter() - start))
    report = {
        name: {"median": round(statistics.median(r)), "min": round(min(r)), "max": round(max(r))}
        for name, r in rates.items()
    }
    for name, figures in report.items():
        print(f"{name:12s} {figures['median']:8,d} samples/s  (min {figures['min']:,d}, max {figures['max']:,d})")
    if args.json:
        print(json.dumps({"config": args.config, "steps": args.steps, "repeats": args.repeats, "rates": report}))


if __name__ == "__main__":
    main()
