"""A student's harmonic source: its channels and their phase across a cut; the F0 its feature files carry (extract,
caches, validation), which distillation and synthesis (fused and PyTorch, whole and streamed) read; `--init` growing
a student without a source into one with it, unchanged at step 0."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from tests.conftest import tone
from tests.test_distill import cache_dir, distill_config, teacher_file  # noqa: F401 (fixtures)
from tests.test_student_kernel import MAX_ABS_ERROR, random_student
from vocoder.audio import save_wav
from vocoder.bench.student import bench_student
from vocoder.corpus.cache import feature_stamp
from vocoder.corpus.preprocess import preprocess
from vocoder.features.acoustic import extract_features, f0_features
from vocoder.features.featurefile import FeatureFileError, f0_hz, read_features, save_features, validate_features
from vocoder.generate import Sampling
from vocoder.models.checkpoint import save_model
from vocoder.models.source import harmonic_source

HOP, RATE = 10, 1000


def test_source_channels_are_harmonics_of_the_f0_phase_and_continue_across_a_cut() -> None:
    f0 = torch.tensor([[100.0, 100.0, 0.0, 150.0, 300.0, 200.0]], dtype=torch.float64)
    source = harmonic_source(f0, HOP, RATE, 3)
    assert source.shape == (1, 4, 6 * HOP)
    per_sample = f0.repeat_interleave(HOP, dim=1)[0]
    phase = 2 * math.pi * torch.cumsum(per_sample / RATE, 0)
    voiced = (per_sample > 0).double()
    for k in (1, 2, 3):
        below_nyquist = (k * per_sample < RATE / 2).double()
        torch.testing.assert_close(source[0, k - 1], torch.sin(k * phase) * voiced * below_nyquist)
    assert torch.equal(source[0, 3], voiced)  # the vuv flag
    assert source[0, :, 20:30].abs().sum() == 0  # unvoiced frame: silent sines, vuv 0
    assert source[0, 1, 40:50].abs().sum() == 0 < source[0, 0, 40:50].abs().sum()  # 2 x 300 Hz: past Nyquist
    # Two halves, the second started at the phase the first ended on, make the whole.
    first, second = harmonic_source(f0[:, :3], HOP, RATE, 3), harmonic_source(f0[:, 3:], HOP, RATE, 3, phase[29:30])
    torch.testing.assert_close(torch.cat([first, second], dim=-1), source)


def test_a_source_student_needs_f0_in_its_feature_files_even_when_it_conditions_on_the_mel_alone(
    tmp_path: Path,
) -> None:
    config, plain = distill_config(source_harmonics=3), distill_config()
    assert config.features.conditioning == ["mel"] and config.feature_arrays() == ["mel", "lf0", "vuv"]
    assert plain.feature_arrays() == ["mel"]
    wav = tone(0.5, freq=200.0)
    path = save_features(tmp_path / "x.npz", extract_features(wav, config, speaker="bob"))  # as `extract` writes
    features = read_features(path)
    validate_features(features, config)
    hz = features.f0_hz()
    np.testing.assert_array_equal(hz, f0_hz(*f0_features(wav, 16000, config.features)))  # exp(lf0) * vuv
    assert abs(np.median(hz[hz > 0]) - 200.0) < 5 and features.conditioning(config).shape[1] == config.features.dim
    assert extract_features(wav, plain).lf0 is None  # a student without a source: the mel only, as before
    for missing in ("lf0", "vuv"):
        without = dataclasses.replace(features, **{missing: None})
        with pytest.raises(FeatureFileError, match=rf"x.npz: field '{missing}': .*harmonic source reads F0"):
            validate_features(without, config)
        validate_features(without, plain)
    # A cache for such a student is stamped with the arrays it holds beyond the conditioning (older stamps keep
    # their hash: the key is absent for a cache of the conditioning alone).
    assert feature_stamp(config, {})["arrays"] == ["mel", "lf0", "vuv"]
    assert "arrays" not in feature_stamp(plain, {})
    assert feature_stamp(config, {})["hash"] != feature_stamp(plain, {})["hash"]


@torch.inference_mode()
def test_a_source_student_synthesizes_from_feature_files_fused_as_pytorch_and_streamed_as_whole(
    tmp_path: Path,
) -> None:
    model = random_student(source_harmonics=4)
    config = model.config
    path = save_model(tmp_path / "student" / "model.safetensors", model, config, "student", {"steps": 0})
    gap = 0.002 * np.random.default_rng(1).standard_normal(1600).astype(np.float32)
    wav = np.concatenate([tone(0.3, freq=180.0), gap, tone(0.3, freq=240.0)])  # voiced, unvoiced, voiced
    features = extract_features(wav, config, speaker="bob")
    assert 0 < features.vuv.mean() < 1
    frames = torch.from_numpy(features.conditioning(config))[None]
    f0 = torch.from_numpy(features.f0_hz())[None]
    local = model.with_source(model.upsample(frames), f0, None)  # training's source: the whole at once
    expected = model.generate(local, torch.tensor([1]), Sampling(seed=3).uniforms(1, local.shape[-1]))[0].numpy()
    fused, plain = (vocoder.load(path, device="cpu", backend=backend) for backend in ("cpu-kernel", "torch"))
    for synthesizer in (fused, plain):
        waveform = synthesizer.synthesize(features, seed=3)
        assert np.abs(waveform - expected).max() < MAX_ABS_ERROR, synthesizer._student.name
    whole = fused.synthesize(features, seed=3)
    streamed = np.concatenate(list(fused.synthesize_stream(features, Sampling(seed=3), chunk_samples=1000)))
    np.testing.assert_array_equal(streamed, whole)  # 2048-sample chunks, then 4096...: the phase carried across
    unvoiced = dataclasses.replace(features, vuv=np.zeros_like(features.vuv))
    assert np.abs(fused.synthesize(unvoiced, seed=3) - whole).max() > 1e-3  # the source reaches the waveform
    with pytest.raises(FeatureFileError, match="field 'lf0': .*harmonic source reads F0"):
        fused.synthesize(dataclasses.replace(features, lf0=None))


def test_the_student_benchmark_times_a_source_student_with_its_source() -> None:
    report = bench_student(distill_config(source_harmonics=3), seconds=0.1, repeats=1)
    assert report["student_generator"] == "kernel" and report["speedup_student_vs_torch"] > 0


def test_preprocess_writes_a_source_students_f0_and_stamps_it(tmp_path: Path) -> None:
    folder = tmp_path / "corpus" / "alice"
    folder.mkdir(parents=True)
    for index in range(2):
        save_wav(folder / f"take{index}.wav", tone(0.6, freq=150.0 + 50 * index), 16000)
    config, cache = distill_config(source_harmonics=3), tmp_path / "cache"
    report = preprocess("folder", tmp_path / "corpus", cache, config, jobs=1, progress=False)
    assert not report["skipped"]
    assert json.loads((cache / "features.json").read_text())["arrays"] == ["mel", "lf0", "vuv"]
    features = read_features(cache / "features" / "alice_take1.npz")
    validate_features(features, config)
    hz = features.f0_hz()
    assert abs(np.median(hz[hz > 0]) - 200.0) < 5
    preprocess("folder", tmp_path / "corpus", cache, distill_config(), jobs=1, progress=False)  # another stamp
    assert read_features(cache / "features" / "alice_take1.npz").lf0 is None  # the cache was rebuilt without F0
