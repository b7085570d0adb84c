"""ONNX export of the Parallel WaveNet student (`vocoder export --format onnx`): onnxruntime against PyTorch on the
same noise, a student with a harmonic source (its source computed in the upsampler graph from frame F0) over seconds
of phase, and a teacher refused with the reason."""

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
from tests.test_student_kernel import random_student
from vocoder.bench.student import bench_student
from vocoder.cli import app
from vocoder.config import SamplingConfig
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
SOURCE_TOLERANCE = 1e-5
"""The exported source against NSF's formula summed sample by sample in float64 (measured 4.6e-7: the float32 output
and its harmonic recurrence). A float32 phase is off by 1.5e-3 after SOURCE_SECONDS; the exporter's float32 rounding
of a Python float `hop / sr` (vocoder/models/source.py) put 4.8e-4 between the graph's source and PyTorch's."""
SOURCE_SECONDS = 6.0
"""Long enough for the phase to wrap about 850 times (F0 100-300 Hz, 70 % voiced in 7 stretches: 3,400 turns of the
4th harmonic) and for float32 rounding of it to show."""
HARMONICS = 4
DEFAULT_SAMPLING = SamplingConfig(temperature=0.5, voiced_temperature=0.3)


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
    assert manifest["student"]["inputs"] == ["local", "uniforms", "temperatures", "speaker_ids"]
    assert manifest["upsampler"]["inputs"] == ["frames"] and "f0" not in manifest  # no source: no F0
    assert manifest["speakers"] == ["alice", "bob"] and manifest["hop_length"] == 40
    student = vocoder.load(model_file, "cpu")
    model = student.model
    onnx = OnnxStudent(folder)
    frames = torch.randn(2, 13, 10)  # another batch and length than the export's example
    with torch.no_grad():
        local = model.upsample(frames)
        assert (onnx.upsample(frames, None) - local).abs().max() < MAX_ABS_DIFFERENCE
        uniforms, speakers = torch.rand(2, 13 * 40), torch.tensor([1, 0])
        temperatures = torch.rand(2, 13 * 40) + 0.2  # a different noise scale for every sample
        expected = model.generate(local, speakers, uniforms, temperatures)
    assert (onnx.generate(local, speakers, uniforms, temperatures) - expected).abs().max() < MAX_ABS_DIFFERENCE
    with pytest.raises(VocoderError, match=r"temperature: expected a number or one per sample, shape \[2, 520\]"):
        onnx.generate(local, speakers, uniforms, temperatures[:, :-1])


@pytest.mark.slow
def test_the_exported_pipeline_is_the_services_synthesis(exported: tuple[Path, Path]) -> None:
    """Feature file -> upsampler.onnx -> student.onnx with the seed's uniforms = `Vocoder.synthesize(seed=...)`."""
    model_file, folder = exported
    student = vocoder.load(model_file, "cpu")
    mel = np.random.default_rng(0).standard_normal((9, 10)).astype(np.float32)
    features = Features(16000, 40, mel=mel, speaker="bob")
    expected = student.synthesize(features, seed=5)
    onnx = OnnxStudent(folder)
    local = onnx.upsample(torch.from_numpy(features.conditioning(student.config))[None], None)
    uniforms = Sampling(seed=5).uniforms(1, local.shape[-1])
    waveform = onnx.generate(local, torch.tensor([1]), uniforms)[0].numpy()
    assert np.abs(waveform - expected).max() < KERNEL_TOLERANCE


def test_a_teacher_is_refused_with_the_reason(tiny_model_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_model_file), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, VocoderError)
    message = str(result.exception)
    assert "a teacher cannot be exported to ONNX" in message and "export a student" in message
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def exported_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny student with a harmonic source (as tests/test_student_source.py builds one) and a voicing-tied
    default sampling (DEFAULT_SAMPLING), exported."""
    root = tmp_path_factory.mktemp("onnx-source")
    model = random_student(source_harmonics=HARMONICS)
    config = model.config.model_copy(update={"sampling": DEFAULT_SAMPLING})
    model_file = save_model(root / "student" / "model.safetensors", model, config, "student", {})
    result = CliRunner().invoke(app, ["export", "--model", str(model_file), "--out", str(root / "x")])
    assert result.exit_code == 0, result.output
    return model_file, root / "x"


def voiced_features(seconds: float) -> Features:
    """Random mel frames with an F0 contour gliding over 100-300 Hz, voiced for about 0.6 s at a time with unvoiced
    gaps of 0.3 s between (`lf0` continuous through them, as WORLD's interpolated log-F0 is)."""
    frames = round(seconds * 16000 / 40)
    t = np.arange(frames) / 400  # seconds, at 400 frames per second
    rng = np.random.default_rng(0)
    lf0 = np.log(200 + 100 * np.sin(2 * np.pi * 0.3 * t)).astype(np.float32)
    vuv = (np.sin(2 * np.pi * 1.1 * t) > -0.5).astype(np.float32)
    mel = rng.standard_normal((frames, 10)).astype(np.float32)
    return Features(16000, 40, mel=mel, lf0=lf0, vuv=vuv, speaker="bob")


def nsf_source(f0: np.ndarray, hop: int, sample_rate: int, harmonics: int) -> np.ndarray:
    """`[harmonics + 1, F * hop]`: the source by its definition, the phase summed sample by sample in float64,
    independently of vocoder/models/source.py."""
    per_sample = np.repeat(f0.astype(np.float64), hop)
    phase = 2 * np.pi * np.cumsum(per_sample / sample_rate)
    voiced = (per_sample > 0).astype(np.float64)
    sines = [np.sin(k * phase) * voiced * (k * per_sample < sample_rate / 2) for k in range(1, harmonics + 1)]
    return np.stack([*sines, voiced])


@pytest.mark.slow
def test_a_source_students_export_computes_its_source_from_f0_and_synthesizes_as_pytorch(
    exported_source: tuple[Path, Path],
) -> None:
    """Feature file -> `f0_hz` and frames -> upsampler.onnx -> student.onnx = `Vocoder.synthesize`, over seconds of
    phase with unvoiced gaps."""
    model_file, folder = exported_source
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["upsampler"]["inputs"] == ["frames", "f0"]
    assert manifest["f0"]["fields"] == ["lf0", "vuv"] and manifest["f0"]["hz"] == "exp(lf0) * vuv"
    assert manifest["source_harmonics"] == HARMONICS
    assert manifest["student"]["inputs"] == ["local", "uniforms", "temperatures", "speaker_ids"]
    defaults = manifest["temperatures"]
    assert (defaults["temperature"], defaults["voiced_temperature"]) == (0.5, 0.3)
    features = voiced_features(SOURCE_SECONDS)
    assert 0.2 < features.vuv.mean() < 0.9
    plain = vocoder.load(model_file, "cpu", backend="torch")
    model, config = plain.model, plain.config
    frames = torch.from_numpy(features.conditioning(config))[None]
    f0 = torch.from_numpy(features.f0_hz())[None]
    onnx = OnnxStudent(folder)
    local = onnx.upsample(frames, f0)
    with torch.no_grad():
        expected_local = model.with_source(model.upsample(frames), f0, None)
    assert local.shape == (1, 5 + HARMONICS + 1, len(features.vuv) * 40)
    assert (local - expected_local).abs().max() < MAX_ABS_DIFFERENCE  # measured 3.6e-7
    reference = nsf_source(f0[0].numpy(), 40, 16000, HARMONICS)
    assert np.abs(local[0, 5:].numpy() - reference).max() < SOURCE_TOLERANCE
    uniforms = Sampling(seed=5).uniforms(1, local.shape[-1])
    voiced = np.repeat(features.vuv, 40) > 0  # the manifest's rule, by its definition
    temperatures = torch.from_numpy(np.where(voiced, defaults["voiced_temperature"], defaults["temperature"]))
    waveform = onnx.generate(local, torch.tensor([1]), uniforms, temperatures[None])[0].numpy()
    assert np.abs(waveform - plain.synthesize(features, seed=5)).max() < MAX_ABS_DIFFERENCE  # measured 1.5e-7
    fused = vocoder.load(model_file, "cpu")
    assert np.abs(waveform - fused.synthesize(features, seed=5)).max() < KERNEL_TOLERANCE  # measured 1.6e-7


@pytest.mark.slow
def test_the_upsampler_is_given_f0_exactly_when_its_student_has_a_source(
    exported: tuple[Path, Path], exported_source: tuple[Path, Path]
) -> None:
    frames, f0 = torch.randn(1, 3, 10), torch.full((1, 3), 120.0)
    with pytest.raises(VocoderError, match=r"f0: this export's upsampler expects frame F0 .*, found None"):
        OnnxStudent(exported_source[1]).upsample(frames, None)
    with pytest.raises(VocoderError, match=r"expects None: it has no harmonic source, found shape \[1, 3\]"):
        OnnxStudent(exported[1]).upsample(frames, f0)


@pytest.mark.slow
def test_the_student_benchmark_times_the_export_of_a_source_student_with_its_source() -> None:
    """`vocoder bench generation --onnx`: the export's upsampler graph computes the source from the bench's F0."""
    config = tiny_config(student={**STUDENT, "source_harmonics": 3})
    report = bench_student(config, seconds=0.1, repeats=1, onnx=True)
    assert report["student_onnx_samples_per_s"] > 0 and report["speedup_student_vs_onnx"] > 0


def test_the_manifest_carries_the_band_of_input_levels_a_caller_keeps_to(tmp_path: Path) -> None:
    from vocoder.features.level import InputLevels

    torch.manual_seed(0)
    config = tiny_config(student=STUDENT)
    band = InputLevels(low=-2.0, middle=5.0, high=12.0)
    model_file = save_model(
        tmp_path / "student" / "model.safetensors", StudentWaveNet(config), config, "student", band.to_metadata()
    )
    arguments = ["export", "--format", "onnx", "--model", str(model_file), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "x" / "export.json").read_text())
    levels = manifest["input_levels_db"]
    assert (levels["low"], levels["middle"], levels["high"]) == (-2.0, 5.0, 12.0) and "waveform / g" in levels["rule"]
