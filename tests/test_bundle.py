from pathlib import Path

import pytest
import yaml

import vocoder
from tests.conftest import tiny_config
from vocoder.errors import VocoderError
from vocoder.features.level import InputLevels
from vocoder.models import bundle as bundle_module
from vocoder.models.bundle import bundle_model
from vocoder.models.checkpoint import replace_header


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
    # The file records the band of input levels it trained on, so the bundle reads none from --data (here only a
    # manifest for the card: the band's own test, tests/test_level.py, bundles from a real cache).
    replace_header(tiny_model_file, metadata={"steps": 0, **InputLevels(1.0, 5.0, 9.0).to_metadata()})
    target = bundle_model(tiny_model_file, "teacher", tmp_path / "models", [features], summary, notes)
    assert yaml.safe_load((target / "config.yaml").read_text())["name"] == tiny_config().name
    card = (target / "README.md").read_text()
    for expected in (
        notes,
        "| steps | 0 |",
        "`feats`: 1 training utterances (0.5 min) of 2, speakers alice, bob",
        "| teacher | 1.2 |",
        "receptive field | 16 samples",
        "| input levels | trained on mel levels 1.0 to 9.0 dB",
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
    assert "harmonic source" not in card
    sourced = tiny_config(student={**STUDENT, "source_harmonics": 4})
    path = save_model(tmp_path / "h.safetensors", StudentWaveNet(sourced), sourced, "student", {"steps": 3})
    card = (bundle_model(path, "voiced", tmp_path / "models") / "README.md").read_text()
    assert "| harmonic source | 4 harmonics of the recording's F0" in card
    assert "feature files hold mel, lf0, vuv (`vocoder extract --model voiced` writes them)" in card


@pytest.mark.slow
def test_a_bundled_run_ships_its_training_state_and_the_next_run_continues_it(tmp_path: Path) -> None:
    """The bundled model keeps getting better from run to run: its checkpoint ships beside it, verified, and
    `--resume-from` continues the same run (step, schedule, optimizer) in a new run directory."""
    from tests.test_train import build_cache, train_config
    from vocoder.train.checkpoints import read_checkpoint, save_checkpoint
    from vocoder.train.trainer import Trainer

    config = train_config(max_steps=4)
    data = build_cache(tmp_path / "cache", config)
    first = Trainer(config, data, tmp_path / "run1", "cpu")
    first.run()
    checkpoint = first.store.path_for(4)
    target = bundle_model(tmp_path / "run1" / "model", "teacher", tmp_path / "models", training_state=checkpoint)
    state = target / "training" / "state.pt"
    shipped, original = read_checkpoint(state), read_checkpoint(checkpoint)  # verified against its digest
    assert shipped["step"] == original["step"] == 4
    assert all(shipped["model"][name].equal(tensor) for name, tensor in original["model"].items())
    assert "`training/state.pt`: continue with `vocoder train --resume-from`" in (target / "README.md").read_text()
    assert "/" + tmp_path.parts[1] not in (target / "README.md").read_text()  # no path of the building machine

    following = Trainer(train_config(max_steps=6), data, tmp_path / "run2", "cpu", resume_from=state)
    assert following.step == 4
    summary = following.run()
    assert summary.step == 6
    (tmp_path / "run3" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run3" / "checkpoints" / checkpoint.name).write_bytes(checkpoint.read_bytes())
    straight = Trainer(train_config(max_steps=6), data, tmp_path / "run3", "cpu", resume=True)
    straight.run()
    for name, tensor in straight.model.state_dict().items():  # --resume-from is exactly --resume
        assert following.model.state_dict()[name].equal(tensor), name

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint.read_bytes()[:-100])
    with pytest.raises(VocoderError, match="damaged.pt"):
        bundle_model(tmp_path / "run1" / "model", "other", tmp_path / "models", training_state=damaged)
    assert not (tmp_path / "models" / "other").exists()
    with pytest.raises(VocoderError, match="no such training state"):
        Trainer(config, data, tmp_path / "run4", "cpu", resume_from=tmp_path / "missing.pt")

    older = read_checkpoint(checkpoint)  # saved before `model.lpc_order` existed: its config lacks the field
    del older["config"]["model"]["lpc_order"]
    save_checkpoint(older, tmp_path / "older.pt")
    bundle_model(tmp_path / "run1" / "model", "older", tmp_path / "models", training_state=tmp_path / "older.pt")
    other = read_checkpoint(checkpoint)
    other["config"]["model"]["residual_channels"] += 1
    save_checkpoint(other, tmp_path / "other.pt")
    with pytest.raises(VocoderError, match="not the same run"):
        bundle_model(tmp_path / "run1" / "model", "other", tmp_path / "models", training_state=tmp_path / "other.pt")
    assert not (tmp_path / "models" / "other").exists()
