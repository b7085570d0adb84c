"""Synthesis speed of a randomly initialised Parallel WaveNet student, beside the teacher's Fast WaveNet figure.

The student's work per sample does not depend on its weights, so a random model of the config's `student` section
(or the default `StudentConfig` when the config has none) measures what a distilled one would. A run is the whole
synthesis of one utterance from frame-rate features: upsampling, noise and the single forward pass.
"""

from __future__ import annotations

import statistics
import time

import torch

from vocoder.config import Config, StudentConfig
from vocoder.generate import Sampling
from vocoder.models.student import StudentWaveNet


def bench_student(
    config: Config,
    fast_samples_per_s: float | None = None,
    seconds: float = 10.0,
    repeats: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, object]:
    """Batch-1 samples per second for a `seconds`-long utterance (median, min, max of `repeats` runs after a
    warm-up), and the speed-up over `fast_samples_per_s` when given."""
    torch.manual_seed(seed)
    student_config = config if config.student is not None else config.model_copy(update={"student": StudentConfig()})
    model = StudentWaveNet(student_config).eval().to(device)
    frames = max(1, round(seconds * config.audio.sample_rate / config.features.hop_length))
    conditioning = torch.randn(1, frames, config.features.dim, device=device)
    speakers = torch.zeros(1, dtype=torch.long, device=device) if config.speakers else None
    samples = frames * config.features.hop_length
    uniforms = Sampling(seed=seed).uniforms(1, samples)

    def synthesize() -> None:
        with torch.inference_mode():
            model.generate(model.upsample(conditioning), speakers, uniforms)

    synthesize()  # warm-up: allocator, kernels
    rates = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        synthesize()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(samples / (time.perf_counter() - start))
    median = statistics.median(rates)
    report: dict[str, object] = {
        "student_samples_per_s": round(median, 1),
        "student_samples_per_s_min": round(min(rates), 1),
        "student_samples_per_s_max": round(max(rates), 1),
        "student_seconds": seconds,
        "student_flows": list(student_config.student.flows),
        "student_params": model.parameter_count(),
    }
    if fast_samples_per_s:
        report["speedup_student_vs_fast"] = round(median / fast_samples_per_s, 2)
    return report
