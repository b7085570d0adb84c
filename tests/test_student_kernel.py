"""The fused student forward must compute what `StudentWaveNet.generate` computes, and fall back cleanly where it
cannot run. The first test in a fresh checkout compiles the extension (about half a minute on two cores); later runs
load the cached build from build/kernels/.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vocoder
from tests.conftest import tiny_config
from tests.test_cpu_kernel import torch_threads
from vocoder.config import load_config
from vocoder.generate import KernelStudent, Sampling, TorchStudent, student_generator
from vocoder.generate import student_kernel as student_kernel_module
from vocoder.models.student import StudentWaveNet
from vocoder.native import KernelUnavailable

MAX_ABS_ERROR = 3e-6
"""Stated bound on max |kernel waveform - PyTorch waveform|: about 4x the largest measured over these tests (1.3e-7
to 7.2e-7, float32 rounding of a different summation order); it was 1e-4, 140x, which let a real bug through."""
RELATIVE_ERROR = 3e-6
"""Stated bound on ||kernel - PyTorch|| / ||PyTorch|| over a waveform: about 4x the largest measured (1.3e-7 to
7.2e-7)."""
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

TINY_STUDENT = {
    "flows": [2, 3, 10],
    "dilation_cycle": 10,
    "residual_channels": 6,
    "gate_channels": 10,
    "skip_channels": 7,
    "conditioning_channels": 5,
}
"""Odd channel counts (no multiple of any register block) and dilations up to 512, beyond the 256-sample tile (a
layer's history is longer than the tile), on the tiny conftest config with two speakers."""


def random_student(config_name: str | None = None, seed: int = 0, **student: object) -> StudentWaveNet:
    """A student whose heads are not at their (identity-like) initialisation, so every path carries signal."""
    torch.manual_seed(seed)
    config = load_config(config_name) if config_name else tiny_config(student={**TINY_STUDENT, **student})
    model = StudentWaveNet(config).eval()
    with torch.no_grad():
        for flow in model.flows:
            torch.nn.init.normal_(flow.head[1].weight, std=0.3)
    return model


def inputs(model: StudentWaveNet, batch: int, frames: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Frame-rate conditioning `[B, frames, C]`, speaker ids (multi-speaker models), uniforms `[B, T]`."""
    config = model.config
    conditioning = torch.randn(batch, frames, config.features.dim, generator=torch.Generator().manual_seed(1))
    speakers = torch.arange(batch) % len(config.speakers) if config.speakers else None
    return conditioning, speakers, Sampling(seed=2).uniforms(batch, frames * config.features.hop_length)


def assert_close(out: torch.Tensor, reference: torch.Tensor) -> None:
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert (out - reference).abs().max().item() < MAX_ABS_ERROR
    assert ((out - reference).norm() / reference.norm()).item() < RELATIVE_ERROR


@torch.inference_mode()
def check_equivalent(model: StudentWaveNet, batch: int, frames: int) -> None:
    kernel, reference = KernelStudent(model), TorchStudent(model)
    conditioning, speakers, uniforms = inputs(model, batch, frames)
    local = model.upsample(conditioning)
    expected = reference.one_pass(local, speakers, uniforms)
    assert_close(kernel.one_pass(local, speakers, uniforms), expected)
    assert_close(kernel.generate(model.conditioning(conditioning), speakers, uniforms), expected)
    assert expected.std().item() > 0.01 and expected.abs().max().item() < 1.0  # a live, unclipped signal


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_kernel_matches_pytorch_forward_with_speakers_and_batch(kernel_size: int) -> None:
    check_equivalent(random_student(kernel_size=kernel_size), batch=3, frames=150)


def test_kernel_matches_pytorch_forward_on_a_10s_demo_student_utterance() -> None:
    check_equivalent(random_student("demo_student"), batch=1, frames=800)


@torch.inference_mode()
def test_bundled_student_synthesizes_as_its_pytorch_forward() -> None:
    """Through the API (chunked kernel forward, a padded batch of two) against the model's own forward, with the
    harmonic source of the files' F0."""
    student = vocoder.load("student", device="cpu")
    assert isinstance(student._student, KernelStudent)
    features = [student.features(EXAMPLES / name) for name in ("slt_0004_mel.npz", "kal_0165_mel.npz")]
    got = student.generate(features, "student", Sampling(seed=3)).waveform
    matrices = [torch.from_numpy(item.conditioning(student.config)) for item in features]
    longest = max(len(matrix) for matrix in matrices)
    padded = [torch.cat([m, m[-1:].expand(longest - len(m), -1)]) for m in matrices]  # the last frame repeated
    assert student.config.reads_f0  # its source's F0: unvoiced past each utterance's end
    f0 = torch.stack([F.pad(torch.from_numpy(item.f0_hz()), (0, longest - item.n_frames)) for item in features])
    local = student.model.with_source(student.model.upsample(torch.stack(padded)), f0, None)
    assert_close(got, student.model.generate(local, None, Sampling(seed=3).uniforms(2, local.shape[-1])))


@torch.inference_mode()
def test_parts_and_threads_give_bitwise_the_same_waveform() -> None:
    """Each part recomputes the receptive field in front of it, so where an utterance is split does not matter."""
    model = random_student()
    kernel = KernelStudent(model)
    conditioning, speakers, uniforms = inputs(model, 2, 840)  # two threads: four parts of each utterance
    local = model.upsample(conditioning)
    whole = kernel.one_pass(local, speakers, uniforms, parts=1)
    assert torch.equal(kernel.one_pass(local, speakers, uniforms, parts=7), whole)
    with torch_threads(2):
        assert torch.equal(kernel.one_pass(local, speakers, uniforms), whole)


@torch.inference_mode()
def test_a_temperature_scales_the_noise_in_every_path() -> None:
    """Glow's temperature: the kernel, the PyTorch forward and a stream read the same scaled noise, a number or a
    voicing-tied per-sample schedule."""
    model = random_student()
    kernel, reference = KernelStudent(model), TorchStudent(model)
    conditioning, speakers, uniforms = inputs(model, 2, 150)
    local = model.upsample(conditioning)
    hop = model.config.features.hop_length
    voicing = torch.arange(150).repeat(2, 1) % 3 != 0
    schedule = Sampling(temperature=0.9, voiced_temperature=0.4).step_temperatures(voicing, hop)
    plain = reference.one_pass(local, speakers, uniforms)
    for scale in (0.5, schedule.whole()):
        expected = reference.one_pass(local, speakers, uniforms, scale)
        assert_close(kernel.one_pass(local, speakers, uniforms, scale), expected)
        assert (expected - plain).abs().max() > 0.01  # the scale changed the draw
    by_schedule = kernel.generate(model.conditioning(conditioning), speakers, uniforms, temperatures=schedule)
    assert_close(by_schedule, reference.one_pass(local, speakers, uniforms, schedule.whole()))
    streamed = kernel.stream(model.conditioning(conditioning), speakers, uniforms, 2048, temperatures=schedule)
    assert torch.equal(torch.cat([chunk for _, chunk in streamed], 1), by_schedule)
    halved = kernel.generate(model.conditioning(conditioning), speakers, uniforms, temperature=0.5)
    assert torch.equal(halved, kernel.one_pass(local, speakers, uniforms, 0.5))


def test_fallbacks_log_why(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    model = random_student()
    conditioning, speakers, uniforms = inputs(model, 1, 20)
    caplog.set_level(logging.WARNING, logger=student_kernel_module.__name__)
    kernel = student_generator(model)
    assert isinstance(kernel, KernelStudent)

    model.double()  # the packed float32 weights no longer apply: the call goes to the model's own forward
    with torch.inference_mode():
        local = model.upsample(conditioning.double())
        out = kernel.generate(local, speakers, uniforms)
        assert torch.equal(out, model.generate(local, speakers, uniforms))
    assert out.dtype == torch.float64 and "float64 input; using the PyTorch forward" in caplog.text

    caplog.clear()
    assert type(student_generator(model)) is TorchStudent and "the kernel is float32" in caplog.text

    def no_build(source: Path) -> None:
        raise KernelUnavailable(f"build of {source.name} failed (no compiler)")

    model.float()
    monkeypatch.setattr(student_kernel_module, "load_extension", no_build)
    caplog.clear()
    assert type(student_generator(model)) is TorchStudent and "no compiler" in caplog.text
