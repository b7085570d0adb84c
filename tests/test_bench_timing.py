"""The one timing helper of `vocoder bench`: variants interleaved run by run, one rate per run."""

from __future__ import annotations

import time

import torch

from vocoder.bench.timing import rate_summary, timed_rates


def test_runs_are_interleaved_and_each_gives_one_rate() -> None:
    calls: list[str] = []

    def run(name: str) -> None:
        calls.append(name)
        time.sleep(0.01)

    runs = {"a": (lambda: run("a"), 100), "b": (lambda: run("b"), 1)}
    rates = timed_rates(runs, repeats=3, device=torch.device("cpu"))
    assert calls == ["a", "b"] * 3  # load on a shared machine falls on both alike
    assert [len(values) for values in rates.values()] == [3, 3]
    assert all(values < 100 for values in rates["b"]) and all(values > 100 for values in rates["a"])
    summary = rate_summary(rates)
    assert summary["a_samples_per_s_min"] <= summary["a_samples_per_s"] <= summary["a_samples_per_s_max"]
