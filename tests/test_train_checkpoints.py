"""Checkpoints that cannot destroy a run (issue #15): a digest catches altered bytes, `--resume` falls back to the
newest good checkpoint then `best.pt` and otherwise stops, rotation never counts a damaged file, exports are never
replaced by a worse model, and `--restart` moves the earlier run aside."""

from __future__ import annotations

from pathlib import Path

import pytest

import vocoder
from tests.test_train import build_cache, train_config
from vocoder.errors import VocoderError
from vocoder.train.checkpoints import CheckpointStore, DamagedCheckpoint, read_checkpoint
from vocoder.train.trainer import Trainer

EVERY_TWO = {"checkpoint_every": 2, "valid_every": 2, "keep_last": 2}
pytestmark = pytest.mark.xdist_group("train_checkpoints")  # on one xdist worker: the `trained` run is made once


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("cache"), train_config())


@pytest.fixture(scope="module")
def trained(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 6 steps: step_4, step_6 and best.pt, exports in model/ and best/."""
    run = tmp_path_factory.mktemp("trained")
    Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu", max_steps=6).run()
    return run


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def flip(path: Path, offset: int, length: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + length] = bytes(255 - byte for byte in data[offset : offset + length])
    path.write_bytes(bytes(data))


def test_a_flipped_byte_makes_a_checkpoint_damaged(trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    newest = run / "checkpoints" / "step_00000006.pt"
    assert read_checkpoint(newest)["step"] == 6
    flip(newest, newest.stat().st_size // 2)
    with pytest.raises(DamagedCheckpoint, match="step_00000006.pt"):
        read_checkpoint(newest)
    assert CheckpointStore(run, 2).load_latest()["step"] == 4  # the older good one


def test_resume_with_every_step_checkpoint_damaged_falls_back_to_best(
    trained: Path, cache_dir: Path, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path / "run")
    exported = (run / "model" / "model.safetensors").read_bytes()
    best_step = read_checkpoint(run / "checkpoints" / "best.pt")["step"]
    for step in (4, 6):
        (run / "checkpoints" / f"step_0000000{step}.pt").write_bytes(b"\0" * 100)  # truncate -s 100
    resumed = Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu", resume=True, max_steps=8)
    assert resumed.step == best_step > 0
    resumed.run()
    names = sorted(path.name for path in (run / "checkpoints").iterdir())
    assert "step_00000008.pt" in names and "step_00000006.pt.damaged" in names and "step_00000004.pt.damaged" in names
    assert read_checkpoint(run / "checkpoints" / "step_00000008.pt")["step"] == 8
    assert vocoder.load(run / "model", device="cpu").metadata["steps"] == 8
    assert exported != (run / "model" / "model.safetensors").read_bytes()


def test_resume_without_a_usable_checkpoint_stops(trained: Path, cache_dir: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    for path in (run / "checkpoints").iterdir():
        path.write_bytes(b"\0" * 100)
    exported = (run / "model" / "model.safetensors").read_bytes()
    with pytest.raises(VocoderError, match="(?s)no usable checkpoint.*--restart"):
        Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu", resume=True, max_steps=8)
    assert (run / "model" / "model.safetensors").read_bytes() == exported
    with pytest.raises(VocoderError, match="no usable checkpoint"):
        Trainer(train_config(**EVERY_TWO), cache_dir, tmp_path / "empty", "cpu", resume=True)


def test_exports_are_not_replaced_by_a_worse_model(trained: Path, cache_dir: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    (run / "checkpoints" / "step_00000006.pt").unlink()
    (run / "checkpoints" / "best.pt").unlink()
    best_before = vocoder.load(run / "best", device="cpu").metadata
    resumed = Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu", resume=True, max_steps=5)
    assert resumed.step == 4
    resumed.best_valid_loss = float("inf")  # whatever the restored state says, best/ is compared with best/
    resumed.run()
    assert vocoder.load(run / "model", device="cpu").metadata["steps"] == 6  # not replaced by step 5
    best_after = vocoder.load(run / "best", device="cpu").metadata
    assert best_after["valid_loss"] <= best_before["valid_loss"]


def test_restart_moves_the_earlier_run_aside(trained: Path, cache_dir: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    with pytest.raises(VocoderError, match="--restart"):
        Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu")
    Trainer(train_config(**EVERY_TWO), cache_dir, run, "cpu", max_steps=2, restart=True).run()
    [aside] = run.glob("replaced-*")
    assert sorted(path.name for path in aside.iterdir()) == ["best", "checkpoints", "model"]
    assert read_checkpoint(aside / "checkpoints" / "step_00000006.pt")["step"] == 6
    assert [path.name for path in (run / "checkpoints").glob("step_*")] == ["step_00000002.pt"]
