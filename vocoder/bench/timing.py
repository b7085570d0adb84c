"""The one timing helper of every `vocoder bench` speed figure, and how figures are summarised and labelled.

A figure is a list of rates (samples per second), one per timed run, reported as its median with the min and max.
Runs of several variants are interleaved (one run of each, then again), so the load of a shared machine falls on all
of them alike and their ratios stay comparable.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

FigureCallback = Callable[[str, list[float]], None]
"""Called with a figure's name and its timed rates as soon as it is measured (a benchmark's progress)."""


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rates(
    runs: dict[str, tuple[Callable[[], object], int]], repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """`repeats` rates of each named `(run, samples)`, interleaved: samples per second of one call of `run`, the
    GPU's queued work waited for before and after it, so a rate counts what the call made the device do."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, samples) in runs.items():
            _synchronize(device)
            start = time.perf_counter()
            run()
            _synchronize(device)
            rates[name].append(samples / (time.perf_counter() - start))
    return rates


def rate_summary(rates: dict[str, list[float]]) -> dict[str, object]:
    """`{name}_samples_per_s` (the median) with its `_min` and `_max`, for every named list of timed rates."""
    report: dict[str, object] = {}
    for name, values in rates.items():
        report[f"{name}_samples_per_s"] = round(statistics.median(values), 1)
        report[f"{name}_samples_per_s_min"] = round(min(values), 1)
        report[f"{name}_samples_per_s_max"] = round(max(values), 1)
    return report


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo: what a figure was measured on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
