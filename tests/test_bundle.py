from pathlib import Path

import pytest
import yaml

import vocoder
from tests.conftest import tiny_config
from vocoder.errors import VocoderError
from vocoder.models import bundle as bundle_module
from vocoder.models.bundle import bundle_model


def test_bundle_writes_model_config_and_card(tiny_model_file: Path, tmp_path: Path, monkeypatch) -> None:
    features = tmp_path / "feats"
    features.mkdir()
    (features / "manifest.jsonl").write_text(
        '{"id": "a", "speaker": "alice", "split": "train", "duration": 30.0}\n'
        '{"id": "b", "speaker": "bob", "split": "test", "duration": 2.0}\n'
    )
    summary = tmp_path / "summary.md"
    summary.write_text("| system | PESQ |\n|---|---|\n| teacher | 1.2 |")
    notes = "Trained on a CPU for a few steps: a smoke model."
    target = bundle_model(tiny_model_file, "teacher", tmp_path / "models", features, summary, notes)
    assert yaml.safe_load((target / "config.yaml").read_text())["name"] == tiny_config().name
    card = (target / "README.md").read_text()
    for expected in (
        notes,
        "| steps | 0 |",
        "1 training utterances (0.5 min) of 2, speakers alice, bob",
        "| teacher | 1.2 |",
        "receptive field | 16 samples",
    ):
        assert expected in card
    monkeypatch.setenv("VOCODER_MODELS_DIR", str(tmp_path / "models"))
    assert vocoder.load("teacher", device="cpu").name == "teacher"


def test_bundle_refuses_oversized_models(tiny_model_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 100)
    with pytest.raises(VocoderError, match="exceeds the 20 MB bundle limit"):
        bundle_model(tiny_model_file, "teacher", tmp_path)


def test_a_student_card_describes_its_flows(tmp_path: Path) -> None:
    from tests.test_student import STUDENT
    from vocoder.models.checkpoint import save_model
    from vocoder.models.student import StudentWaveNet

    config = tiny_config(student=STUDENT)
    path = save_model(tmp_path / "s.safetensors", StudentWaveNet(config), config, "student", {"steps": 3})
    card = (bundle_model(path, "student", tmp_path / "models") / "README.md").read_text()
    assert "# `student`: student" in card and "2 flows of [2, 3] layers" in card and "| steps | 3 |" in card
