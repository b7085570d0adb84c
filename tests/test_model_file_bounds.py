"""A tampered model file's config is checked before anything is allocated (issue #15): bounds first, then the
shapes it implies against the file's, every failure a `CheckpointError` naming the file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vocoder
from tests.conftest import tiny_config
from vocoder.models.checkpoint import CheckpointError
from vocoder.models.wavenet import WaveNet


def tampered(model_file: Path, target: Path, **model_fields: int) -> Path:
    with safe_open(str(model_file), framework="pt") as handle:
        header = dict(handle.metadata())
    config = json.loads(header["config"])
    config["model"].update(model_fields)
    header["config"] = json.dumps(config)
    save_file(load_file(str(model_file)), str(target), metadata=header)
    return target


@pytest.mark.parametrize("channels", [4096, 200_000])
def test_a_config_asking_for_huge_layers_fails_before_allocating(
    tiny_model_file: Path, tmp_path: Path, channels: int
) -> None:
    widths = {"residual_channels": channels, "gate_channels": channels, "skip_channels": channels}
    path = tampered(tiny_model_file, tmp_path / "tampered.safetensors", **widths)
    with torch.device("meta"):
        WaveNet(tiny_config())  # torch's one-time set-up of meta initialisers (seconds), not the check's cost
    began = time.monotonic()
    with pytest.raises(CheckpointError, match="tampered.safetensors"):
        vocoder.load(path, device="cpu")
    assert time.monotonic() - began < 2  # allocating the 4096-channel layers alone (about 1 GB) takes longer


def test_an_interrupted_export_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vocoder.models.checkpoint as checkpoint

    def interrupted(tensors: object, filename: str, metadata: object) -> None:
        Path(filename).write_bytes(b"half an export")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", interrupted)
    config = tiny_config()
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_model(tmp_path / "model.safetensors", WaveNet(config), config, "teacher", {})
    assert list(tmp_path.iterdir()) == []


def test_the_distillation_teacher_loader_checks_the_same_bounds(tmp_path: Path) -> None:
    """`load_teacher` builds through the checked builder of `vocoder.load`: a teacher file whose config passes
    the section comparison (the distillation config asks for the same) is still held to the model-file bounds."""
    from vocoder.models.checkpoint import MAX_SPEAKERS, save_model
    from vocoder.train.distill import load_teacher

    config = tiny_config(speakers=[f"s{index}" for index in range(MAX_SPEAKERS + 1)])
    path = save_model(tmp_path / "teacher" / "model.safetensors", WaveNet(config), config, "teacher", {})
    with pytest.raises(CheckpointError, match=r"model.safetensors: embedded config field 'speakers'"):
        load_teacher(path, config)


def test_the_distillation_teacher_loader_checks_shapes_before_reading_weights(
    tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mis-shaped tensor is named from the file's header, before its weights are read into memory."""
    import vocoder.models.checkpoint as checkpoint
    from vocoder.train.distill import load_teacher

    weights = load_file(str(tiny_model_file))
    name = next(iter(weights))
    weights[name] = torch.zeros(64, 64, 64)
    with safe_open(str(tiny_model_file), framework="pt") as handle:
        header = dict(handle.metadata())
    path = tmp_path / "teacher.safetensors"
    save_file(weights, str(path), metadata=header)

    def no_read(*_: object) -> None:
        raise AssertionError("weights read before the shapes were checked")

    monkeypatch.setattr(checkpoint, "load_file", no_read)
    with pytest.raises(CheckpointError, match=name):
        load_teacher(path, tiny_config())
