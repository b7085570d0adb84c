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
