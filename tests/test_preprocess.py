"""Corpus preprocessing into a feature cache: formats, incremental runs, invalidation, bad files, trimming."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
from typer.testing import CliRunner

import vocoder.cli.corpus  # noqa: F401  (registers the commands)
from tests.conftest import tone
from vocoder.audio import load_wav, save_wav
from vocoder.cli.app import app
from vocoder.config import Config, load_config
from vocoder.corpus.preprocess import PAUSE_KEEP_S, PEAK, preprocess
from vocoder.features.featurefile import read_features, validate_features
from vocoder.features.linguistic import format_labels, label_samples, load_question_set, read_labels

pytest_plugins = ["tests.festival_fixtures"]


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_cli_builds_the_cache_and_a_second_run_reuses_it(
    demo_corpus: Path, tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    config = make_linguistic_config()
    config_file = tmp_path / "ling.yaml"
    config_file.write_text(json.dumps(config.model_dump()))
    out = tmp_path / "cache"
    args = ["preprocess", str(demo_corpus), "--layout", "demo", "--out", str(out), "--config", str(config_file)]
    result = CliRunner().invoke(app, [*args, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    rows = _manifest(out)
    assert [row["id"] for row in rows] == ["kal_0001", "kal_0002", "slt_0001", "slt_0002"]
    questions = load_question_set()
    for row in rows:
        features = read_features(out / "features" / f"{row['id']}.npz")
        validate_features(features, config)
        assert features.speaker == row["speaker"] and features.n_frames == row["frames"]
        labels = read_labels(demo_corpus / "lab" / f"{row['id']}.lab")
        assert row["frames"] == math.ceil(label_samples(labels, 16000) / 200)  # Festival's pauses are kept
        assert row["split"] in {"train", "valid", "test"} and row["text"]
        assert row["duration"] == row["frames"] * 200 / 16000
        info = soundfile.info(str(out / "audio" / f"{row['id']}.wav"))
        assert (info.samplerate, info.frames, info.subtype) == (16000, row["frames"] * 200, "PCM_16")
        audio = load_wav(out / "audio" / f"{row['id']}.wav", 16000)
        assert abs(np.max(np.abs(audio)) - PEAK) < 1e-3
        voiced_from_audio = features.vuv > 0
        voiced_phones = features.linguistic[:, questions.index("C-Voiced")] > 0
        assert (voiced_from_audio == voiced_phones).mean() > 0.75  # labels line up with the audio
    assert json.loads((out / "speakers.json").read_text()) == {
        "speakers": ["kal", "slt"],
        "utterances": {"kal": 2, "slt": 2},
    }
    stamp = json.loads((out / "features.json").read_text())
    assert stamp["features"]["linguistic_dim"] == 524 and len(stamp["hash"]) == 16 and stamp["question_set"]
    mtime = (out / "features" / "kal_0001.npz").stat().st_mtime_ns

    again = CliRunner().invoke(app, [*args, "--jobs", "1"])
    assert again.exit_code == 0, again.output
    report = json.loads((out / "report.json").read_text())
    assert (report["written"], report["reused"], report["skipped"]) == (0, 4, [])
    assert (out / "features" / "kal_0001.npz").stat().st_mtime_ns == mtime
    assert _manifest(out) == rows


def test_a_changed_feature_config_clears_the_cache(
    demo_corpus: Path, tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    out = tmp_path / "cache"
    first = preprocess("demo", demo_corpus, out, make_linguistic_config(hop_length=200), jobs=1, progress=False)
    assert not first["cleared_stale_cache"]
    frames = {row["id"]: row["frames"] for row in _manifest(out)}
    second = preprocess("demo", demo_corpus, out, make_linguistic_config(hop_length=100), jobs=1, progress=False)
    assert second["cleared_stale_cache"] and second["written"] == 4
    for row in _manifest(out):
        assert abs(row["frames"] - 2 * frames[row["id"]]) <= 1
        assert read_features(out / "features" / f"{row['id']}.npz").hop_length == 100


def test_bad_files_are_skipped_and_reported(demo_corpus: Path, tmp_path: Path) -> None:
    mel_config = load_config("seed_size")
    folder = tmp_path / "folder" / "kal"
    folder.mkdir(parents=True)
    shutil.copy(demo_corpus / "wav" / "kal_0001.wav", folder / "good.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    save_wav(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    save_wav(folder / "short.wav", tone(0.1), 16000)
    report = preprocess("folder", tmp_path / "folder", tmp_path / "cache", mel_config, jobs=1, progress=False)
    reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
    assert set(reasons) == {"kal_corrupt", "kal_silent", "kal_short"}
    assert "cannot read audio" in reasons["kal_corrupt"]
    assert reasons["kal_silent"] == "silent" and reasons["kal_short"].startswith("too short")
    assert [row["id"] for row in _manifest(tmp_path / "cache")] == ["kal_good"]
    features = read_features(tmp_path / "cache" / "features" / "kal_good.npz")
    validate_features(features, mel_config)
    assert features.linguistic is None and features.mel.shape[1] == 80
    original = load_wav(folder / "good.wav", 16000)
    assert features.n_frames * 200 < len(original)  # energy trimming removed some silence


def test_bad_labels_are_skipped_with_the_line(
    demo_corpus: Path, tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    folder = tmp_path / "folder" / "kal"
    folder.mkdir(parents=True)
    for name in ("fine", "broken", "unlabelled"):
        shutil.copy(demo_corpus / "wav" / "kal_0001.wav", folder / f"{name}.wav")
    shutil.copy(demo_corpus / "lab" / "kal_0001.lab", folder / "fine.lab")
    lines = (demo_corpus / "lab" / "kal_0001.lab").read_text().splitlines()
    lines[4] = "oops " + lines[4]
    (folder / "broken.lab").write_text("\n".join(lines) + "\n")
    report = preprocess(
        "folder", tmp_path / "folder", tmp_path / "cache", make_linguistic_config(), jobs=1, progress=False
    )
    reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
    assert "broken.lab:5:" in reasons["kal_broken"]
    assert "no full-context label file" in reasons["kal_unlabelled"]
    assert [row["id"] for row in _manifest(tmp_path / "cache")] == ["kal_fine"]


def test_long_leading_pause_is_trimmed_in_audio_and_labels_alike(
    demo_corpus: Path, tmp_path: Path, make_linguistic_config: Callable[..., Config]
) -> None:
    folder = tmp_path / "folder" / "slt"
    folder.mkdir(parents=True)
    wav = load_wav(demo_corpus / "wav" / "slt_0001.wav", 16000)
    segments = read_labels(demo_corpus / "lab" / "slt_0001.lab")
    shutil.copy(demo_corpus / "wav" / "slt_0001.wav", folder / "plain.wav")
    shutil.copy(demo_corpus / "lab" / "slt_0001.lab", folder / "plain.lab")
    save_wav(folder / "padded.wav", np.concatenate([np.zeros(16000, np.float32), wav]), 16000)
    one_second = 10_000_000
    shifted = [segments[0].__class__(0, segments[0].end + one_second, segments[0].context, 1)]
    shifted += [s.__class__(s.start + one_second, s.end + one_second, s.context, s.line) for s in segments[1:]]
    (folder / "padded.lab").write_text(format_labels(shifted))
    out = tmp_path / "cache"
    report = preprocess("folder", tmp_path / "folder", out, make_linguistic_config(), jobs=1, progress=False)
    assert report["skipped"] == []
    plain = load_wav(out / "audio" / "slt_plain.wav", 16000)
    padded = load_wav(out / "audio" / "slt_padded.wav", 16000)
    lead = segments[0].end / 1e7
    assert lead < PAUSE_KEEP_S  # Festival's own pause is short enough to keep
    shift = round((PAUSE_KEEP_S - lead) * 16000)
    assert np.allclose(padded[shift : shift + len(plain) - 400], plain[:-400], atol=2e-4)
    plain_features = read_features(out / "features" / "slt_plain.npz")
    padded_features = read_features(out / "features" / "slt_padded.npz")
    questions = load_question_set()
    first_phone = [
        int(np.argmax(f.linguistic[:, questions.index("C-Silence")] == 0)) for f in (plain_features, padded_features)
    ]
    assert abs((first_phone[1] - first_phone[0]) * 200 - shift) <= 200  # labels moved with the audio


def _bad_folder(demo_corpus: Path, root: Path) -> Path:
    """A folder corpus of one good file, and a corrupt, a silent and a too-short one."""
    speaker = root / "folder" / "kal"
    speaker.mkdir(parents=True)
    (speaker / "good.wav").write_bytes((demo_corpus / "wav" / "kal_0001.wav").read_bytes())
    (speaker / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    for name, wav in {"silent": np.zeros(16000, np.float32), "short": tone(0.1)}.items():
        save_wav(speaker / f"{name}.wav", wav, 16000)
    return speaker.parent


def test_bad_files_are_skipped_alike_by_worker_processes(demo_corpus: Path, tmp_path: Path) -> None:
    """With jobs > 1 a bad file's failure comes back from a worker process as its skip reason, the same as in
    one process, and the good file is cached."""
    corpus = _bad_folder(demo_corpus, tmp_path)
    config = load_config("seed_size")
    one = preprocess("folder", corpus, tmp_path / "one", config, jobs=1, progress=False)
    two = preprocess("folder", corpus, tmp_path / "two", config, jobs=2, progress=False)
    assert [entry["id"] for entry in two["skipped"]] == ["kal_corrupt", "kal_short", "kal_silent"]
    assert two["skipped"] == one["skipped"]
    assert two["written"] == 1 and [row["id"] for row in _manifest(tmp_path / "two")] == ["kal_good"]
    assert json.loads((tmp_path / "two" / "report.json").read_text())["skipped"] == two["skipped"]


def test_an_utterance_longer_than_max_frames_is_skipped_as_too_long(demo_corpus: Path, tmp_path: Path) -> None:
    corpus = _bad_folder(demo_corpus, tmp_path)
    config = load_config("seed_size")
    short = config.model_copy(update={"features": config.features.model_copy(update={"max_frames": 50})})
    report = preprocess("folder", corpus, tmp_path / "cache", short, jobs=1, progress=False)
    reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
    assert reasons["kal_good"].startswith("too long: ") and "features.max_frames is 50" in reasons["kal_good"]
    frames = int(reasons["kal_good"].split()[2])
    assert frames > 50
    assert report["written"] == 0


def test_a_corpus_whose_every_file_is_skipped_says_so(demo_corpus: Path, tmp_path: Path) -> None:
    """Nothing usable: the run still ends with a report (every file and its reason) and an empty manifest, and the
    CLI's summary line says 0 written and how many were skipped."""
    corpus = _bad_folder(demo_corpus, tmp_path)
    (corpus / "kal" / "good.wav").unlink()
    out = tmp_path / "cache"
    args = ["preprocess", str(corpus), "--layout", "folder", "--out", str(out), "--config", "seed_size", "--jobs", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"written": 0' in result.output and "skipped 3" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["utterances"] == 3 and report["written"] == 0 and len(report["skipped"]) == 3
    assert (out / "manifest.jsonl").read_text() == ""
