"""Distillation: the KL goes down, resume is exact, the exported student synthesizes through the API and the CLI,
mismatched teachers are refused, and the student benchmark reports its figures."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from safetensors.torch import load_file

import vocoder
from tests.conftest import HEAVY, TINY, merge, tiny_config, tone
from tests.test_student import STUDENT
from tests.test_train import build_cache
from vocoder.bench.student import bench_student
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import read_features, save_features
from vocoder.features.level import InputLevels
from vocoder.generate import Sampling
from vocoder.losses.distillation import density_distillation
from vocoder.models.bundle import bundle_model
from vocoder.models.checkpoint import file_identity, read_model_header, save_model
from vocoder.models.student import logistic_noise
from vocoder.models.wavenet import WaveNet
from vocoder.train.distill import DistillTrainer, teacher_inputs

pytestmark = pytest.mark.xdist_group("distill")  # on one xdist worker: `cache_dir` and `teacher_file` are made once

TRAIN = {
    "batch_size": 2,
    "segment_frames": 8,
    "learning_rate": 1e-2,
    "warmup_steps": 2,
    "max_steps": 4,
    "log_every": 2,
    "valid_every": 100,
    "checkpoint_every": 2,
    "valid_segments": 4,
    "sample_seconds": 0.04,
    "keep_last": 2,
}


def distill_dict(**student: object) -> dict[str, object]:
    return merge(TINY, {"student": {**STUDENT, **student}, "train": TRAIN})


def distill_config(train: dict[str, object] | None = None, **student: object) -> Config:
    return tiny_config(student={**STUDENT, **student}, train={**TRAIN, **(train or {})})


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("cache"), distill_config())


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = tiny_config()
    path = tmp_path_factory.mktemp("teacher") / "model.safetensors"
    return save_model(path, WaveNet(config), config, "teacher", {"steps": 0})


def test_distillation_lowers_the_kl(cache_dir: Path, teacher_file: Path, tmp_path: Path) -> None:
    config = distill_config({"max_steps": 30, "valid_every": 30, "checkpoint_every": 30}, power_weight=0, stft_weight=0)
    trainer = DistillTrainer(teacher_file, config, cache_dir, tmp_path, "cpu")
    first_kl = trainer._validate()  # with only the KL weighted, the validation loss is the KL (fixed noise)
    summary = trainer.run()
    assert summary.step == 30
    assert first_kl > 0.2 and summary.valid_loss < 0.5 * first_kl, (first_kl, summary.valid_loss)
    assert (tmp_path / "samples" / "step_00000030.wav").is_file()


def test_a_distillation_with_the_teachers_augmentation_records_its_wider_band(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    """Gain and tilt reach the student's batches as they reach a teacher's, and its model file's band of input levels
    widens by the gain, so synthesis moves fewer utterances (vocoder/features/level.py)."""
    bands = {}
    for gain_db, tilt in ((0.0, 0.0), (12.0, 0.375)):
        config = distill_config({"max_steps": 1, "gain_db": gain_db, "tilt": tilt})
        trainer = DistillTrainer(teacher_file, config, cache_dir, tmp_path / f"gain{gain_db:g}", "cpu")
        assert (trainer.sampler.augmentation is not None) == (gain_db > 0)
        trainer.run()
        model_file = tmp_path / f"gain{gain_db:g}" / "model" / "model.safetensors"
        bands[gain_db] = InputLevels.from_metadata(read_model_header(model_file)[2])
    plain, augmented = bands[0.0], bands[12.0]
    assert augmented.low == pytest.approx(plain.low - 12.0) and augmented.high > plain.high
    assert augmented.middle == pytest.approx(plain.middle - 6.0)


def test_contrastive_term_subtracts_the_kl_under_rotated_conditioning(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    trainer = DistillTrainer(teacher_file, distill_config(contrastive_weight=0.3), cache_dir, tmp_path, "cpu")
    batch = trainer.sampler.batch([0, 1], torch.Generator().manual_seed(0))
    noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(2))
    batch = dataclasses.replace(batch, frames=batch.frames + noise)  # tones have constant features: make them vary
    margin = trainer.margin_samples
    z = logistic_noise(torch.rand(batch.targets.shape, generator=torch.Generator().manual_seed(1)))
    output = trainer.model(z, trainer.model.upsample(batch.frames)[:, :, margin:-margin], batch.speaker_ids)
    total, parts = trainer.objective(output, batch)

    teacher, mu = trainer.teacher, trainer.config.audio.mu
    local = teacher.upsample(batch.frames)[:, :, margin:-margin]
    wrong = torch.cat(
        [local[:, :, local.shape[-1] - local.shape[-1] // 2 :], local[:, :, : local.shape[-1] - local.shape[-1] // 2]],
        -1,
    )
    logits = teacher.forward_embedded(teacher_inputs(teacher, output.waveform, mu, False), wrong, batch.speaker_ids)
    kl = density_distillation(output.location, output.log_scale, logits, trainer.edges)[0]
    expected = ((kl * batch.mask).sum() / batch.mask.sum()).item()
    assert parts["contrastive_kl"] == pytest.approx(expected, rel=1e-5)
    assert not torch.allclose(wrong, local) and parts["contrastive_kl"] != parts["kl"]  # another conditioning
    weights = trainer.config.student
    assert total.item() == pytest.approx(
        parts["kl"] - 0.3 * expected + weights.power_weight * parts["power"] + weights.stft_weight * parts["stft"],
        rel=1e-5,
    )
    total.backward()  # the term is differentiable through the student's sample and logistics
    assert all(p.grad is not None for p in trainer.model.parameters() if p.requires_grad)


def test_resume_continues_exactly(cache_dir: Path, teacher_file: Path, tmp_path: Path) -> None:
    straight = DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "straight", "cpu")
    straight.run()
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "split", "cpu", max_steps=2).run()
    resumed = DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "split", "cpu", resume=True)
    assert resumed.step == 2
    resumed.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    with pytest.raises(VocoderError, match="'student'"):  # the student's shape may not change on resume
        DistillTrainer(teacher_file, distill_config(flows=[2]), cache_dir, tmp_path / "split", "cpu", resume=True)
    recorded = vocoder.load(tmp_path / "split" / "model", device="cpu").metadata["teacher"]
    assert recorded["sha256"] == hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    torch.manual_seed(1)  # the same shape, other weights: a retrained teacher
    other = save_model(tmp_path / "other" / "model.safetensors", WaveNet(tiny_config()), tiny_config(), "teacher", {})
    with pytest.raises(VocoderError, match="were distilled from the teacher"):
        DistillTrainer(other, distill_config(), cache_dir, tmp_path / "split", "cpu", resume=True)
    # The same teacher bundled with another default sampling: other bytes, the same weights and recipe.
    cooler = bundle_model(teacher_file, "cooler", tmp_path / "bundled", sampling={"voiced_temperature": 0.5})
    assert file_identity(cooler / "model.safetensors")["sha256"] != recorded["sha256"]
    again = DistillTrainer(cooler, distill_config(), cache_dir, tmp_path / "split", "cpu", resume=True, max_steps=5)
    assert again.step == 4


def test_init_fine_tunes_from_a_student_and_records_it(cache_dir: Path, teacher_file: Path, tmp_path: Path) -> None:
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "first", "cpu", max_steps=2).run()
    first = tmp_path / "first" / "model" / "model.safetensors"
    tuned = DistillTrainer(
        teacher_file, distill_config(stft_weight=0.5), cache_dir, tmp_path / "tuned", "cpu", max_steps=2, init=first
    )
    for name, value in load_file(first).items():  # the loss weights may differ; the shapes may not
        assert torch.equal(tuned.model.state_dict()[name], value), name
    tuned.run()
    DistillTrainer(teacher_file, distill_config(stft_weight=0.5), cache_dir, tmp_path / "tuned", "cpu", True, 3).run()
    recorded = vocoder.load(tmp_path / "tuned" / "model", device="cpu").metadata["initialised_from"]
    assert recorded["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()  # kept across --resume
    with pytest.raises(VocoderError, match="pass one"):
        DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "tuned", "cpu", True, init=first)
    with pytest.raises(VocoderError, match="--init must be a student model, found kind 'teacher'"):
        DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "a", "cpu", init=teacher_file)
    with pytest.raises(VocoderError, match="do not match"):
        DistillTrainer(teacher_file, distill_config(flows=[2]), cache_dir, tmp_path / "b", "cpu", init=first)


def test_init_grows_a_student_by_flows_that_start_as_the_identity(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "first", "cpu", max_steps=2).run()
    first = tmp_path / "first" / "model"
    grown = DistillTrainer(
        teacher_file, distill_config(flows=[2, 3, 4]), cache_dir, tmp_path / "grown", "cpu", init=first
    )
    original = vocoder.load(first, device="cpu").model
    z = logistic_noise(torch.rand(2, 300))
    local, speakers = torch.randn(2, original.local_channels, 300), torch.tensor([0, 1])
    with torch.no_grad():
        before, after = original(z, local, speakers), grown.model(z, local, speakers)
    torch.testing.assert_close(after.waveform, before.waveform)
    torch.testing.assert_close(after.log_scale, before.log_scale)
    assert grown.run().step == 4 and grown.model.flows[2].head[1].weight.abs().sum() > 0  # the new flow trains
    with pytest.raises(VocoderError, match="do not match"):  # only appended flows are new: the others must match
        DistillTrainer(teacher_file, distill_config(flows=[3, 3, 4]), cache_dir, tmp_path / "c", "cpu", init=first)


def test_distillation_reads_f0_from_the_cache_and_init_grows_a_student_into_a_source_unchanged(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    config = distill_config(source_harmonics=3)
    with pytest.raises(VocoderError, match=r"not \['lf0', 'vuv'\], which config '.*' reads"):
        DistillTrainer(teacher_file, config, cache_dir, tmp_path / "a", "cpu")  # a cache of the mel alone
    source_cache = build_cache(tmp_path / "cache", config)  # as `preprocess` with this config: F0 beside the mel
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "plain", "cpu", max_steps=2).run()
    plain = tmp_path / "plain" / "model"
    grown = DistillTrainer(teacher_file, config, source_cache, tmp_path / "grown", "cpu", init=plain)
    first = grown.corpus.utterances[0]
    np.testing.assert_array_equal(first.f0, read_features(source_cache / "features" / "utt0.npz").f0_hz())
    assert first.f0.max() > 100  # the tone's F0, from the feature file
    assert grown.sampler.batch([0, 1], torch.Generator().manual_seed(0)).f0 is not None
    original = vocoder.load(plain, device="cpu").model
    z = logistic_noise(torch.rand(2, 320))  # 8 frames of the config's hop of 40
    local, speakers = torch.randn(2, original.local_channels, 320), torch.tensor([0, 1])
    f0 = torch.tensor([[120.0] * 4 + [0.0] * 4, [0.0] * 3 + [210.0] * 5])
    with torch.no_grad():
        before = original(z, local, speakers)
        after = grown.model(z, grown.model.with_source(local, f0, None), speakers)
    torch.testing.assert_close(after.waveform, before.waveform)
    torch.testing.assert_close(after.log_scale, before.log_scale)
    source_columns = grown.model.flows[0].layers[0].local.weight[:, original.local_channels :]
    assert source_columns.abs().sum() == 0
    assert grown.run().step == 4
    assert grown.model.flows[0].layers[0].local.weight[:, original.local_channels :].abs().sum() > 0  # it learns
    with pytest.raises(VocoderError, match="reads a harmonic source"):
        vocoder.load(tmp_path / "grown" / "model", device="cpu").model.with_source(local, None, None)


def test_exported_student_synthesizes_and_methods_are_checked(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path, "cpu", max_steps=2).run()
    student = vocoder.load(tmp_path / "model", device="cpu")
    assert student.kind == "student" and student.config.student is not None
    features = extract_features(tone(0.1), tiny_config(), speaker="bob")
    wav = student.synthesize(features, method="student", seed=3)
    assert wav.dtype == np.float32 and wav.shape == (features.n_samples,) and np.all(np.abs(wav) <= 1)
    assert np.array_equal(wav, student.synthesize(features, method="student", seed=3))
    assert not np.array_equal(wav, student.synthesize(features, method="student", seed=4))
    chunks = list(student.synthesize_stream(features, Sampling(seed=3), chunk_samples=500))
    assert len(chunks) == 4 and np.array_equal(np.concatenate(chunks), wav)
    with pytest.raises(VocoderError, match="student model takes one of \\['student'\\]"):
        student.synthesize(features, method="fast")
    with pytest.raises(VocoderError, match="teacher model takes one of"):
        vocoder.load(teacher_file, device="cpu").synthesize(features, method="student")


def test_mismatched_teacher_or_missing_student_section_is_refused(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    other = tiny_config(model={"layers": 4})
    other_file = save_model(tmp_path / "other.safetensors", WaveNet(other), other, "teacher", {})
    with pytest.raises(VocoderError, match="teacher's 'model' section differs"):
        DistillTrainer(other_file, distill_config(), cache_dir, tmp_path / "run", "cpu")
    with pytest.raises(VocoderError, match="no 'student' section"):
        DistillTrainer(teacher_file, tiny_config(train=TRAIN), cache_dir, tmp_path / "run", "cpu")
    with pytest.raises(VocoderError, match="too short for an STFT of n_fft 2048"):
        DistillTrainer(teacher_file, distill_config(stft_resolutions=[(2048, 512, 2048)]), cache_dir, tmp_path, "cpu")
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "student", "cpu", max_steps=2).run()
    with pytest.raises(VocoderError, match="must be a teacher"):
        DistillTrainer(tmp_path / "student" / "model", distill_config(), cache_dir, tmp_path / "run", "cpu")


def distill_under_ddp(config: dict[str, object], cache_dir: Path, teacher_file: Path, tmp_path: Path) -> Path:
    """`vocoder distill` under torchrun on two CPU processes for two steps, into tmp_path/run; returns the config
    file it wrote."""
    config_file = tmp_path / "student.yaml"
    config_file.write_text(yaml.safe_dump(config))
    torchrun = Path(sys.executable).with_name("torchrun")
    distilled = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "vocoder.cli", "distill", "--teacher",
         str(teacher_file), "--config", str(config_file), "--data", str(cache_dir), "--out", str(tmp_path / "run"),
         "--max-steps", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert distilled.returncode == 0, distilled.stderr[-3000:]
    assert distilled.stdout.count("step 2:") == 1  # rank 0 alone reports and checkpoints
    return config_file


@pytest.mark.slow
@HEAVY
def test_cli_distills_under_ddp_then_synthesizes_with_the_student(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    distill_under_ddp(distill_dict(), cache_dir, teacher_file, tmp_path)
    student = vocoder.load(tmp_path / "run" / "model", device="cpu")
    assert student.kind == "student" and student.metadata["device"] == "cpu x2"
    extracted = extract_features(tone(0.1), tiny_config(), speaker="alice")
    features = save_features(tmp_path / "f.npz", extracted)
    synthesized = subprocess.run(
        [sys.executable, "-m", "vocoder.cli", "synthesize", str(features), "--model", str(tmp_path / "run" / "model"),
         "--method", "student", "--seed", "1", "--out", str(tmp_path / "out.wav"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert synthesized.returncode == 0, synthesized.stderr[-2000:]
    assert soundfile.read(tmp_path / "out.wav", dtype="float32")[0].shape == (extracted.n_samples,)


def test_student_benchmark_reports_speed_and_speedup() -> None:
    report = bench_student(distill_config(), fast_samples_per_s=1000.0, seconds=0.1, repeats=2)
    assert report["student_samples_per_s"] > 0 and report["student_flows"] == STUDENT["flows"]
    assert report["speedup_student_vs_fast"] == pytest.approx(report["student_samples_per_s"] / 1000.0, rel=0.01)
    assert "speedup_student_vs_fast" not in bench_student(tiny_config(), seconds=0.1, repeats=1)


def test_init_grows_a_student_into_one_that_reads_f0_beside_the_mel_for_a_teacher_that_does(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    """A teacher grown to read F0 (`real_teacher_lpc_f0`) takes a student grown the same way: it shares the
    teacher's features and model sections, and `--init` from the mel student starts it unchanged."""
    width = tiny_config().features.n_mels
    grown_sections = {"features": {"conditioning": ["mel", "lf0", "vuv"]}, "model": {"conditioning_channels": width}}
    config = tiny_config(student=STUDENT, train=TRAIN, **grown_sections)
    torch.manual_seed(1)
    f0_teacher = save_model(tmp_path / "t" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    f0_cache = build_cache(tmp_path / "cache", config, count=3)
    DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path / "plain", "cpu", max_steps=2).run()
    plain = vocoder.load(tmp_path / "plain" / "model", device="cpu").model
    grown = DistillTrainer(f0_teacher, config, f0_cache, tmp_path / "grown", "cpu", init=tmp_path / "plain" / "model")
    frames = torch.randn(2, 4, width + 2)
    with torch.no_grad():
        torch.testing.assert_close(grown.model.upsample(frames), plain.upsample(frames[..., :width]))
    assert grown.run().step == 4 and grown.model.upsampler.prenet.weight[:, width:].any()
