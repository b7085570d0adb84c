"""Which model a request without `?model=` gets: the only one, the only one that can do the route's work, or the
configured default."""

from pathlib import Path
from types import SimpleNamespace

from vocoder_server.registry import Registry


def fake_model(*conditioning: str) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(features=SimpleNamespace(conditioning=list(conditioning))))


def test_tts_defaults_to_the_one_model_that_reads_linguistic_features(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    teacher, student, tts = fake_model("mel"), fake_model("mel"), fake_model("linguistic", "lf0", "vuv")
    registry.models = {"teacher": teacher, "student": student, "tts-teacher": tts}  # type: ignore[dict-item]
    assert registry.resolve(None, "teacher", reads="linguistic") is tts
    assert registry.resolve(None, "teacher") is teacher
    assert registry.resolve("student", "teacher", reads="linguistic") is student  # a named model is never overruled
    registry.models["tts-2"] = fake_model("linguistic", "vuv")  # type: ignore[assignment]
    assert registry.resolve(None, "tts-2", reads="linguistic") is registry.models["tts-2"]  # two: the default
