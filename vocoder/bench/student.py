"""Synthesis speed of a randomly initialised Parallel WaveNet student, beside the teacher's Fast WaveNet figure.

The student's work per sample does not depend on its weights, so a random model of the config's `student` section
(or the default `StudentConfig` when the config has none) measures what a distilled one would. A run is the whole
synthesis of one utterance from frame-rate features: upsampling, noise and the single forward pass, timed for the
path users get (`student_generator`: the fused CPU forward where it runs) and for the plain PyTorch forward.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from vocoder.api import Vocoder
from vocoder.bench import VOICED_HZ
from vocoder.bench.timing import FigureCallback, rate_summary, timed_rates
from vocoder.config import Config, StudentConfig
from vocoder.generate import Sampling, TorchStudent, student_generator
from vocoder.models.student import StudentWaveNet
from vocoder.onnx_export import OnnxStudent, export_student
from vocoder.vocabulary import STUDENT


def bench_student(
    config: Config,
    fast_samples_per_s: float | None = None,
    seconds: float = 10.0,
    repeats: int = 3,
    device: str = "cpu",
    seed: int = 0,
    onnx: bool = False,
    progress: FigureCallback | None = None,
) -> dict[str, object]:
    """Batch-1 samples per second for a `seconds`-long utterance (median, min, max of `repeats` runs after a
    warm-up) of the generator users get and of the PyTorch forward (with `onnx`, also of the ONNX export run by
    onnxruntime), and the speed-up over `fast_samples_per_s` when given. They are timed alternately, so load on a
    shared machine falls on all alike. `progress` hears of every figure at the end."""
    torch.manual_seed(seed)
    student_config = config if config.student is not None else config.model_copy(update={"student": StudentConfig()})
    model = StudentWaveNet(student_config).eval().to(device)
    frames = max(1, round(seconds * config.audio.sample_rate / config.features.hop_length))
    conditioning = torch.randn(1, frames, config.features.dim, device=device)
    f0 = torch.full((1, frames), VOICED_HZ, device=device)  # a harmonic source's input
    speakers = torch.zeros(1, dtype=torch.long, device=device) if config.speakers else None
    samples = frames * config.features.hop_length
    uniforms = Sampling(seed=seed).uniforms(1, samples)

    generators = {"student": student_generator(model), "student_torch": TorchStudent(model)}
    scratch = tempfile.TemporaryDirectory(prefix="student-onnx-")
    if onnx:
        export_student(Vocoder(model, "random", kind=STUDENT), Path(scratch.name))
        generators["student_onnx"] = OnnxStudent(Path(scratch.name), torch.get_num_threads())

    def synthesize(generator: TorchStudent | OnnxStudent) -> None:
        """One whole synthesis: upsampling (and a harmonic source), noise and the forward pass; the export's own
        upsampler graph for onnxruntime."""
        with torch.inference_mode():
            if isinstance(generator, OnnxStudent):
                local = generator.upsample(conditioning, f0 if model.source_channels else None)
            else:
                local = model.source_conditioning(model.conditioning(conditioning), f0)
            generator.generate(local, speakers, uniforms)

    runs = {
        name: (lambda generator=generator: synthesize(generator), samples) for name, generator in generators.items()
    }
    with scratch:
        for generator in generators.values():
            synthesize(generator)  # warm-up: allocator, kernels
        rates = timed_rates(runs, repeats, torch.device(device))
    if progress is not None:  # timed alternately: every figure is ready at once
        for name, values in rates.items():
            progress(name, values)
    report: dict[str, object] = {"student_generator": generators["student"].name, **rate_summary(rates)}
    median = statistics.median(rates["student"])
    report.update(
        {
            "student_seconds": seconds,
            "student_flows": list(student_config.student.flows),
            "student_params": model.parameter_count(),
            "speedup_student_vs_torch": round(median / statistics.median(rates["student_torch"]), 2),
        }
    )
    if onnx:
        report["speedup_student_vs_onnx"] = round(median / statistics.median(rates["student_onnx"]), 2)
    if fast_samples_per_s:
        report["speedup_student_vs_fast"] = round(median / fast_samples_per_s, 2)
    return report
