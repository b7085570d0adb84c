"""Training: loss goes down, exports load, resume is exact, kill -9 loses nothing, DDP runs, bad data stops early."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import vocoder
from tests.conftest import HEAVY, TINY, merge, tiny_config, tone
from vocoder.audio import save_wav
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache, ManifestRow, feature_stamp
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import save_features
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder.train.checkpoints import read_checkpoint
from vocoder.train.data import TrainingCorpus, TrainingDataError
from vocoder.train.trainer import Trainer

TRAIN = {
    "batch_size": 2,
    "segment_frames": 8,
    "learning_rate": 3e-3,
    "warmup_steps": 2,
    "max_steps": 8,
    "log_every": 2,
    "valid_every": 4,
    "checkpoint_every": 4,
    "valid_segments": 2,
    "sample_seconds": 0.04,
    "keep_last": 2,
}


def train_config(**train: object) -> Config:
    return tiny_config(train={**TRAIN, **train})


def write_config(path: Path, **train: object) -> Path:
    path.write_text(yaml.safe_dump(merge(TINY, {"train": {**TRAIN, **train}})))
    return path


def build_cache(root: Path, config: Config, count: int = 6, seconds: float = 0.2) -> Path:
    """A feature cache of harmonic tones, two speakers, as `vocoder preprocess` lays it out."""
    cache = FeatureCache(root)
    cache.open(feature_stamp(config, {"test": True}))
    rows = []
    for index in range(count):
        speaker = ["alice", "bob"][index % 2]
        wav = tone(seconds + 0.05 * index, freq=120 + 40 * index)
        features = extract_features(wav, config, speaker=speaker)
        utterance = f"utt{index}"
        save_features(cache.feature_path(utterance), features)
        padded = np.pad(wav, (0, features.n_samples - len(wav)))
        save_wav(cache.audio_path(utterance), padded, 16000)
        split = "valid" if index == count - 1 else "train"
        row = ManifestRow(utterance, speaker, split, features.n_frames, features.n_samples / 16000, None, "tone")
        cache.append(row)
        rows.append(row)
    cache.finish(rows, {"skipped": []})
    return root


def train_arguments(config: Path, data: Path, out: Path) -> list[str]:
    """`-m vocoder.cli train ...` on CPU, for `python` or `torchrun`."""
    options = {"--config": config, "--data": data, "--out": out, "--device": "cpu"}
    return ["-m", "vocoder.cli", "train", *(str(item) for pair in options.items() for item in pair)]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("cache"), train_config())


@pytest.mark.slow
def test_training_learns_and_exports_a_loadable_model(cache_dir: Path, tmp_path: Path) -> None:
    config = train_config(max_steps=80, valid_every=80, checkpoint_every=80, learning_rate=1e-2)
    trainer = Trainer(config, cache_dir, tmp_path, "cpu")
    first_valid = trainer._validate()
    summary = trainer.run()
    assert summary.step == 80
    assert summary.valid_loss < first_valid - 0.5  # from about ln(256) = 5.5 towards the tones' distribution
    model = vocoder.load(tmp_path / "model", device="cpu")
    assert model.metadata["steps"] == 80 and model.metadata["valid_loss"] == pytest.approx(summary.valid_loss, 1e-3)
    assert (tmp_path / "samples" / "step_00000080.wav").is_file()
    assert (tmp_path / "samples" / "step_00000080.png").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_resume_continues_exactly(cache_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(train_config(), cache_dir, tmp_path / "straight", "cpu")
    straight.run()
    Trainer(train_config(), cache_dir, tmp_path / "split", "cpu", max_steps=4).run()
    resumed = Trainer(train_config(), cache_dir, tmp_path / "split", "cpu", resume=True)
    assert resumed.step == 4
    resumed.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [p.name for p in sorted((tmp_path / "split" / "checkpoints").glob("step_*"))] == [
        "step_00000004.pt",
        "step_00000008.pt",
    ]


def test_a_fresh_run_refuses_to_overwrite_checkpoints(cache_dir: Path, tmp_path: Path) -> None:
    Trainer(train_config(), cache_dir, tmp_path, "cpu", max_steps=4).run()
    with pytest.raises(VocoderError, match="--resume"):
        Trainer(train_config(), cache_dir, tmp_path, "cpu")


def test_a_time_limit_ends_on_a_checkpoint_and_an_export_of_the_same_step(cache_dir: Path, tmp_path: Path) -> None:
    """A run under a wall-clock budget (a lent GPU's minutes) stops at the first step past it, between the
    configured checkpoints, and leaves a state and a model of that step."""
    config = train_config(max_steps=1000, log_every=1000, valid_every=1000, checkpoint_every=1000)
    summary = Trainer(config, cache_dir, tmp_path, "cpu").run(time_limit=1e-6)
    assert summary.step == 1 and summary.valid_loss is not None
    assert [path.name for path in (tmp_path / "checkpoints").glob("step_*")] == ["step_00000001.pt"]
    assert read_checkpoint(tmp_path / "checkpoints" / "step_00000001.pt")["step"] == 1
    model = vocoder.load(tmp_path / "model", device="cpu")
    assert model.metadata["steps"] == 1 and model.metadata["valid_loss"] == pytest.approx(summary.valid_loss, 1e-3)
    resumed = Trainer(config, cache_dir, tmp_path, "cpu", resume=True, max_steps=3)
    assert resumed.step == 1 and resumed.run().step == 3


@pytest.mark.slow
@HEAVY
def test_kill_9_mid_run_and_mid_write_then_resume(cache_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", max_steps=100_000, checkpoint_every=2, valid_every=1000)
    command = [sys.executable, *train_arguments(config, cache_dir, tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints.is_dir() and len(list(checkpoints.glob("step_*.pt"))) >= 2):
        assert time.monotonic() < deadline and process.poll() is None, "training did not checkpoint in time"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    good = sorted(checkpoints.glob("step_*.pt"))[-1]
    last_good = int(good.stem.split("_")[1])
    # A write torn by the crash: a temporary file, and a damaged newer checkpoint (as a non-atomic filesystem leaves).
    (checkpoints / ".step_99999998.pt.partial").write_bytes(b"half a checkpoint")
    (checkpoints / "step_99999999.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    resumed = subprocess.run(
        [*command, "--resume", "--max-steps", str(last_good + 2)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping damaged checkpoint" in resumed.stderr and "step_99999999.pt" in resumed.stderr
    assert f"resumed from step {last_good}" in resumed.stderr
    assert f"step {last_good + 2}:" in resumed.stdout
    assert vocoder.load(tmp_path / "run" / "model", device="cpu").metadata["steps"] == last_good + 2


@pytest.mark.slow
@HEAVY
def test_ddp_with_two_gloo_processes(cache_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", max_steps=4)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", *train_arguments(config, cache_dir, tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("step 4:") == 1  # rank 0 alone reports and checkpoints
    state = read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000004.pt")
    assert len(state["rng"]["data"]) == 2
    assert vocoder.load(tmp_path / "run" / "model", device="cpu").metadata["device"] == "cpu x2"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_autocast_training_learns_resumes_and_loads_on_cpu(cache_dir: Path, tmp_path: Path, amp: str) -> None:
    config = train_config(max_steps=80, valid_every=40, checkpoint_every=40, learning_rate=1e-2, amp=amp)
    trainer = Trainer(config, cache_dir, tmp_path, "cuda", max_steps=40)
    assert trainer.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert trainer.scaler.is_enabled() == (amp == "fp16")  # loss scaling only for fp16
    first_valid = trainer._validate()
    trainer.run()
    resumed = Trainer(config, cache_dir, tmp_path, "cuda", resume=True)
    assert resumed.step == 40
    summary = resumed.run()
    assert summary.step == 80 and summary.valid_loss < first_valid - 0.5
    model = vocoder.load(tmp_path / "model", device="cpu")
    assert model.metadata["device"] == "cuda x1" and model.metadata["steps"] == 80


def test_bad_data_stops_before_training(cache_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    FeatureCache(empty).open(feature_stamp(train_config(), {}))
    with pytest.raises(TrainingDataError, match="no 'train' utterances"):
        Trainer(train_config(), empty, tmp_path / "run1", "cpu")
    other = tiny_config(features={"n_mels": 12}, train=TRAIN)
    with pytest.raises(TrainingDataError, match=r"other features settings \(\['n_mels'\]\)"):
        Trainer(other, cache_dir, tmp_path / "run2", "cpu")
    lonely = tiny_config(speakers=["alice"], train=TRAIN)
    with pytest.raises(TrainingDataError, match=r"speakers \['bob'\] are not in"):
        Trainer(lonely, cache_dir, tmp_path / "run3", "cpu")


def test_init_grows_a_mel_model_into_one_that_also_reads_f0_unchanged_at_step_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    mel_config = train_config()
    mel_model = WaveNet(mel_config).eval()
    source = save_model(tmp_path / "mel" / "model.safetensors", mel_model, mel_config, "teacher", {"steps": 0})
    width = mel_config.features.n_mels
    config = train_config(max_steps=2, valid_every=2, checkpoint_every=2)
    config = tiny_config(
        features={"conditioning": ["mel", "lf0", "vuv"]}, model={"conditioning_channels": width}, train=config.train
    )
    cache = build_cache(tmp_path / "f0-cache", config)  # mel, lf0 and vuv
    with caplog.at_level(logging.INFO):
        trainer = Trainer(config, cache, tmp_path / "run", "cpu", init=source)
    assert "the prenet reads the added ['lf0', 'vuv'] through zero weights" in caplog.text
    prenet = trainer.model.upsampler.prenet.weight
    assert prenet.shape[1] == width + 2 and not prenet[:, width:].any()
    inputs, frames = torch.randint(0, 256, (1, 120)), torch.randn(1, 3, width + 2)
    speaker = torch.tensor([1])
    with torch.no_grad():  # step 0 is the mel model, whatever the F0
        grown = trainer.model(inputs, trainer.model.upsample(frames), speaker)
        torch.testing.assert_close(grown, mel_model(inputs, mel_model.upsample(frames[..., :width]), speaker))
    assert trainer.run().step == 2 and trainer.model.upsampler.prenet.weight[:, width:].any()  # it learns them

    narrower = tiny_config(features={"conditioning": ["mel", "lf0", "vuv"]}, train=config.train)
    with pytest.raises(VocoderError, match=f"set model.conditioning_channels: {width}"):
        Trainer(narrower, cache, tmp_path / "other", "cpu", init=source)


def test_a_cache_serves_any_config_whose_arrays_its_files_hold(cache_dir: Path, tmp_path: Path) -> None:
    """The conditioning a model reads is not a property of the files: a mel + F0 cache trains a mel model and one
    that also reads F0; a mel-only cache refuses the second, naming what it lacks."""
    f0_config = tiny_config(features={"conditioning": ["mel", "lf0", "vuv"]}, train=train_config().train)
    f0_cache = build_cache(tmp_path / "f0-cache", f0_config, count=2)
    assert len(TrainingCorpus(f0_cache, train_config(), "train")) == len(TrainingCorpus(f0_cache, f0_config, "train"))
    with pytest.raises(TrainingDataError, match=r"hold \['mel'\], not \['lf0', 'vuv'\], which config 'tiny' reads"):
        TrainingCorpus(cache_dir, f0_config, "train")
    other_window = tiny_config(features={"conditioning": ["mel", "lf0", "vuv"], "win_length": 200})
    with pytest.raises(TrainingDataError, match=r"other features settings \(\['win_length'\]\)"):
        TrainingCorpus(f0_cache, other_window, "train")
