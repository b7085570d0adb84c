"""The Festival front end: text to labels, linguistic features, F0 from targets, and the `vocoder frontend` CLI."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

import vocoder.cli.frontend  # noqa: F401  (registers the command)
from vocoder.audio import load_wav
from vocoder.cli.app import app
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.acoustic import f0_features
from vocoder.features.featurefile import read_features, validate_features
from vocoder.features.linguistic import label_samples, load_question_set, read_labels
from vocoder.frontend import festival
from vocoder.frontend.features import VOICED_QUESTION, text_to_features
from vocoder.frontend.festival import FestivalError, FestivalUtterance, Voice, run_festival
from vocoder.models.checkpoint import read_model_header, resolve_model_path

pytest_plugins = ["tests.festival_fixtures"]


def test_cli_writes_features_labels_and_wave(
    tmp_path: Path, sentences: tuple[str, ...], make_linguistic_config: Callable[..., Config]
) -> None:
    config_file = tmp_path / "ling.yaml"
    config_file.write_text(
        "name: ling\nfeatures: {conditioning: [linguistic, lf0, vuv], linguistic_dim: 524}\nspeakers: [kal]\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "frontend",
            sentences[0],
            "--voice",
            "kal",
            "--out",
            str(out),
            "--wav",
            "--config",
            str(config_file),
            "--f0",
            "targets",
        ],
    )
    assert result.exit_code == 0, result.output
    features = read_features(out / "utt.npz")
    segments = read_labels(out / "utt.lab")
    n_frames = math.ceil(label_samples(segments, 16000) / 200)
    assert features.n_frames == n_frames and features.speaker == "kal"
    assert features.linguistic.shape == (n_frames, 524)
    validate_features(features, make_linguistic_config())
    info = soundfile.info(str(out / "utt.wav"))
    assert (info.samplerate, info.frames, info.subtype) == (16000, n_frames * 200, "PCM_16")
    questions = load_question_set()
    assert np.array_equal(features.vuv, features.linguistic[:, questions.index(VOICED_QUESTION)])
    assert 0.3 < features.vuv.mean() < 0.9
    voiced_hz = np.exp(features.lf0[features.vuv > 0])
    assert voiced_hz.min() > 70 and voiced_hz.max() < 200  # kal: a male voice


def test_female_voice_has_higher_f0_and_targets_follow_the_final_timing(
    festival_utterances: dict[str, list[FestivalUtterance]],
    tmp_path: Path,
    sentences: tuple[str, ...],
    make_linguistic_config: Callable[..., Config],
) -> None:
    for utterance in festival_utterances["slt"]:  # the HTS engine re-times segments after intonation
        end = utterance.segments[-1].end / 1e7
        assert len(utterance.targets) > 5
        assert np.all(np.diff(utterance.targets[:, 0]) >= 0) and utterance.targets[-1, 0] <= end
    paths = {
        voice: text_to_features(sentences, voice, tmp_path / voice, make_linguistic_config(), f0_source="targets")
        for voice in ("slt", "kal")
    }
    assert [p.name for p in paths["slt"]] == ["utt_0001.npz", "utt_0002.npz"]
    median_hz = {}
    for voice, written in paths.items():
        features = read_features(written[1])
        median_hz[voice] = float(np.median(np.exp(features.lf0[features.vuv > 0])))
    assert median_hz["slt"] > 1.4 * median_hz["kal"]


def test_text_file_gives_one_utterance_per_line(tmp_path: Path, sentences: tuple[str, ...]) -> None:
    text = tmp_path / "my story.txt"
    text.write_text(f'{sentences[0]}\n\nHe said "naïve café" — twice!\n')
    result = CliRunner().invoke(app, ["frontend", str(text), "--voice", "kal", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").glob("*.npz")) == ["my_story_0001.npz", "my_story_0002.npz"]
    tts_teacher = read_model_header(resolve_model_path("tts-teacher"))[0]  # the default: the model that reads them
    validate_features(read_features(tmp_path / "o" / "my_story_0001.npz"), tts_teacher)


def test_a_model_that_reads_no_linguistic_features_is_sent_to_extract(tmp_path: Path) -> None:
    with pytest.raises(VocoderError, match="--model teacher: reads mel, .*`vocoder extract --model teacher`"):
        args = ["frontend", "Hi.", "--model", "teacher", "--out", str(tmp_path)]
        CliRunner().invoke(app, args, catch_exceptions=False)


def test_missing_festival_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(festival.shutil, "which", lambda name: None)
    with pytest.raises(FestivalError, match="Debian package 'festival'"):
        run_festival(["hello"], "kal", tmp_path)


def test_missing_voice_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(festival.VOICES, "xyz", Voice("xyz", "xyz_not_installed", "festvox-xyz", "en-US"))
    with pytest.raises(FestivalError, match="install the Debian package 'festvox-xyz'"):
        run_festival(["hello"], "xyz", tmp_path)
    with pytest.raises(FestivalError, match="unknown voice 'abc'"):
        run_festival(["hello"], "abc", tmp_path)


def test_config_with_another_linguistic_width_is_refused(
    tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    config = make_linguistic_config()
    config = config.model_copy(update={"features": config.features.model_copy(update={"linguistic_dim": 100})})
    with pytest.raises(VocoderError, match="linguistic_dim is 100"):
        text_to_features(["hello"], "kal", tmp_path, config)


def test_empty_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VocoderError, match="no text"):
        run_festival(["  ✓  "], "kal", tmp_path)


def test_waveform_f0_is_measured_as_preprocessing_measures_it(
    tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    config = make_linguistic_config()
    [written] = text_to_features(["A short test."], "kal", tmp_path, config, wave=True)
    features = read_features(written)
    lf0, vuv = f0_features(load_wav(tmp_path / "utt.wav", 16000), 16000, config.features)
    assert np.array_equal(features.lf0, lf0) and np.array_equal(features.vuv, vuv)
    assert 0.2 < features.vuv.mean() < 0.95
    with pytest.raises(VocoderError, match="f0 source"):
        text_to_features(["x"], "kal", tmp_path, config, f0_source="guess")
