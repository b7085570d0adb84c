import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vocoder
from tests.conftest import tiny_config
from vocoder.models.checkpoint import CheckpointError, read_model_file, resolve_model_path, save_model
from vocoder.models.wavenet import WaveNet


def test_model_rebuilds_from_its_file_alone(tiny_model_file: Path) -> None:
    _, config, kind, metadata = read_model_file(tiny_model_file)
    assert kind == "teacher" and metadata == {"steps": 0} and config == tiny_config()
    loaded = vocoder.load(tiny_model_file, device="cpu")
    torch.manual_seed(0)
    original = WaveNet(tiny_config()).eval()
    inputs, local = torch.randint(0, 256, (1, 100)), torch.randn(1, 10, 100)
    with torch.no_grad():
        assert torch.equal(loaded.model(inputs, local, torch.tensor([1])), original(inputs, local, torch.tensor([1])))
    assert not list(tiny_model_file.parent.glob(".*partial"))


def test_a_model_file_is_readable_by_other_users(tiny_model_file: Path) -> None:
    """safetensors writes 0600; a service run as another user (the Docker image's) must still load the file."""
    assert tiny_model_file.stat().st_mode & 0o777 == 0o644


def test_model_is_addressable_by_directory_and_by_bundled_name(tiny_model_file: Path, monkeypatch) -> None:
    assert resolve_model_path(tiny_model_file.parent) == tiny_model_file
    monkeypatch.setenv("VOCODER_MODELS_DIR", str(tiny_model_file.parent.parent))
    assert vocoder.load("tiny", device="cpu").name == "tiny"
    with pytest.raises(CheckpointError, match=r"no bundled model of that name \(bundled: tiny\)"):
        resolve_model_path("absent")


def header(config: dict, **changes: str) -> dict[str, str]:
    base = {
        "format": "wavenet-service",
        "format_version": "1",
        "kind": "teacher",
        "config": json.dumps(config),
        "metadata": "{}",
    }
    return {**base, **changes}


def test_rejects_foreign_and_damaged_files(tmp_path: Path) -> None:
    config = tiny_config().model_dump(mode="json")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors file"):
        read_model_file(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign), metadata={"format": "other"})
    with pytest.raises(CheckpointError, match="'format': expected 'wavenet-service'"):
        read_model_file(foreign)
    bad_config = tmp_path / "bad_config.safetensors"
    config["model"]["kernel_size"] = 0
    save_file({"w": torch.zeros(1)}, str(bad_config), metadata=header(config))
    with pytest.raises(CheckpointError, match=r"(?s)embedded config.*model\.kernel_size"):
        read_model_file(bad_config)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path) -> None:
    config = tiny_config()
    path = save_model(tmp_path / "m.safetensors", WaveNet(config), config, "teacher", {})
    other = tiny_config(model={"residual_channels": 16})
    save_file(
        {k: v.contiguous() for k, v in WaveNet(other).state_dict().items()},
        str(path),
        metadata=header(config.model_dump(mode="json")),
    )
    with pytest.raises(CheckpointError, match="mis-shaped"):
        vocoder.load(path, device="cpu")
