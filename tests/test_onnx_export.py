"""ONNX export of the Parallel WaveNet student (`vocoder export --format onnx`): onnxruntime against PyTorch on the
same noise, and a teacher refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vocoder
from tests.conftest import tiny_config
from tests.test_student import STUDENT
from vocoder.cli import app
from vocoder.errors import VocoderError
from vocoder.features.featurefile import Features
from vocoder.generate import Sampling
from vocoder.models.checkpoint import save_model
from vocoder.models.student import StudentWaveNet
from vocoder.onnx_export import OnnxStudent

MAX_ABS_DIFFERENCE = 1e-5
"""onnxruntime against PyTorch, same input and noise, float32 (measured: 3e-8 for the waveform, 6e-7 for the
upsampled conditioning)."""
KERNEL_TOLERANCE = 1e-4
"""Against `Vocoder.synthesize`, which runs the fused C++ forward: its own stated bound against PyTorch."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny student with speakers, saved and exported through the CLI."""
    root = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    config = tiny_config(student=STUDENT)
    model_file = save_model(root / "student" / "model.safetensors", StudentWaveNet(config), config, "student", {})
    arguments = ["export", "--format", "onnx", "--model", str(model_file), "--out", str(root / "x")]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return model_file, root / "x"


@pytest.mark.slow
def test_onnxruntime_matches_pytorch_on_the_same_noise(exported: tuple[Path, Path]) -> None:
    model_file, folder = exported
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["student"]["inputs"] == ["local", "uniforms", "speaker_ids"]
    assert manifest["speakers"] == ["alice", "bob"] and manifest["hop_length"] == 40
    student = vocoder.load(model_file, "cpu")
    model = student.model
    onnx = OnnxStudent(folder)
    frames = torch.randn(2, 13, 10)  # another batch and length than the export's example
    with torch.no_grad():
        local = model.upsample(frames)
        assert (onnx.upsample(frames) - local).abs().max() < MAX_ABS_DIFFERENCE
        uniforms, speakers = torch.rand(2, 13 * 40), torch.tensor([1, 0])
        expected = model.generate(local, speakers, uniforms)
    assert (onnx.generate(local, speakers, uniforms) - expected).abs().max() < MAX_ABS_DIFFERENCE


@pytest.mark.slow
def test_the_exported_pipeline_is_the_services_synthesis(exported: tuple[Path, Path]) -> None:
    """Feature file -> upsampler.onnx -> student.onnx with the seed's uniforms = `Vocoder.synthesize(seed=...)`."""
    model_file, folder = exported
    student = vocoder.load(model_file, "cpu")
    mel = np.random.default_rng(0).standard_normal((9, 10)).astype(np.float32)
    features = Features(16000, 40, mel=mel, speaker="bob")
    expected = student.synthesize(features, seed=5)
    onnx = OnnxStudent(folder)
    local = onnx.upsample(torch.from_numpy(features.conditioning(student.config))[None])
    uniforms = Sampling(seed=5).uniforms(1, local.shape[-1])
    waveform = onnx.generate(local, torch.tensor([1]), uniforms)[0].numpy()
    assert np.abs(waveform - expected).max() < KERNEL_TOLERANCE


def test_a_teacher_is_refused_with_the_reason(tiny_model_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_model_file), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, VocoderError)
    message = str(result.exception)
    assert "a teacher cannot be exported to ONNX" in message and "export a student" in message
    assert not (tmp_path / "x").exists()


def test_a_student_with_a_harmonic_source_is_refused_with_the_reason(tmp_path: Path) -> None:
    config = tiny_config(student={**STUDENT, "source_harmonics": 2})
    path = save_model(tmp_path / "sine" / "model.safetensors", StudentWaveNet(config), config, "student", {})
    result = CliRunner().invoke(app, ["export", "--model", str(path), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, VocoderError)
    assert "harmonic source (student.source_harmonics 2) has no ONNX export yet" in str(result.exception)
    assert not (tmp_path / "x").exists()
