"""The embedded demo corpus and the corpus layouts on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
from typer.testing import CliRunner

import vocoder.cli.corpus  # noqa: F401  (registers the commands)
from vocoder.cli.app import app
from vocoder.corpus.cache import split_of
from vocoder.corpus.demo import demo_sentences
from vocoder.corpus.layouts import CorpusError, discover
from vocoder.errors import VocoderError
from vocoder.features.linguistic import label_samples, read_labels

pytest_plugins = ["tests.festival_fixtures"]


def test_demo_sentence_list() -> None:
    sentences = demo_sentences()
    assert len(sentences) == 200 and len(set(sentences)) == 200
    assert demo_sentences(3) == sentences[:3]
    with pytest.raises(VocoderError, match="between 1 and 200"):
        demo_sentences(201)


def test_demo_corpus_holds_aligned_audio_labels_and_text(demo_corpus: Path) -> None:
    rows = [json.loads(line) for line in (demo_corpus / "metadata.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["slt_0001", "slt_0002", "kal_0001", "kal_0002"]
    assert rows[0]["text"] == demo_sentences(1)[0] and {row["speaker"] for row in rows} == {"slt", "kal"}
    for row in rows:
        info = soundfile.info(str(demo_corpus / "wav" / f"{row['id']}.wav"))
        segments = read_labels(demo_corpus / "lab" / f"{row['id']}.lab")
        assert (info.samplerate, info.subtype) == (16000, "PCM_16")
        assert info.frames == label_samples(segments, 16000)
        assert segments[0].phone == segments[-1].phone == "pau"
    assert json.loads((demo_corpus / "corpus.json").read_text())["voices"] == ["slt", "kal"]
    assert [item.id for item in discover("demo", demo_corpus)] == ["kal_0001", "kal_0002", "slt_0001", "slt_0002"]


def test_demo_cli_is_incremental(demo_corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "demo"
    shutil.copytree(demo_corpus, copy)
    kept = copy / "wav" / "slt_0001.wav"
    before = kept.stat().st_mtime_ns
    (copy / "wav" / "kal_0002.wav").unlink()
    args = ["corpus", "demo", "--out", str(copy), "--sentences", "2", "--voices", "slt,kal", "--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 utterances" in result.output
    assert kept.stat().st_mtime_ns == before and (copy / "wav" / "kal_0002.wav").is_file()


def _wav(path: Path, source: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)


def test_layouts_find_ids_speakers_text_and_labels(demo_corpus: Path, tmp_path: Path) -> None:
    wav = demo_corpus / "wav" / "slt_0001.wav"
    lab = demo_corpus / "lab" / "slt_0001.lab"
    lj = tmp_path / "LJSpeech-1.1"
    _wav(lj / "wavs" / "LJ001-0001.wav", wav)
    (lj / "metadata.csv").write_text("LJ001-0001|Printing, in 1 sense|Printing, in one sense\n")
    [item] = discover("ljspeech", lj)
    assert (item.id, item.speaker, item.text) == ("LJ001-0001", "ljspeech", "Printing, in one sense")

    arctic = tmp_path / "arctic"
    for speaker in ("slt", "bdl"):
        voice = arctic / f"cmu_us_{speaker}_arctic"
        _wav(voice / "wav" / "arctic_a0001.wav", wav)
        (voice / "etc").mkdir()
        (voice / "etc" / "txt.done.data").write_text('( arctic_a0001 "Author of the danger trail." )\n')
    (arctic / "cmu_us_slt_arctic" / "labels" / "full").mkdir(parents=True)
    shutil.copy(lab, arctic / "cmu_us_slt_arctic" / "labels" / "full" / "arctic_a0001.lab")
    items = discover("arctic", arctic)
    assert [(i.id, i.speaker, i.text) for i in items] == [
        ("bdl_arctic_a0001", "bdl", "Author of the danger trail."),
        ("slt_arctic_a0001", "slt", "Author of the danger trail."),
    ]
    assert items[0].labels is None and items[1].labels is not None

    vctk = tmp_path / "VCTK"
    (vctk / "txt" / "p225").mkdir(parents=True)
    (vctk / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.\n")
    _wav(vctk / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac", wav)
    [item] = discover("vctk", vctk)
    assert (item.id, item.speaker, item.text, item.audio.name) == (
        "p225_001",
        "p225",
        "Please call Stella.",
        "p225_001_mic1.flac",
    )

    folder = tmp_path / "folder"
    _wav(folder / "anna" / "one.wav", wav)
    shutil.copy(lab, folder / "anna" / "one.lab")
    (folder / "anna" / "one.txt").write_text("hello\n")
    [item] = discover("folder", folder)
    assert (item.id, item.speaker, item.text, item.labels) == ("anna_one", "anna", "hello", folder / "anna" / "one.lab")


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="metadata.csv: missing"):
        discover("ljspeech", tmp_path)
    with pytest.raises(CorpusError, match="unknown layout 'nope'"):
        discover("nope", tmp_path)
    with pytest.raises(CorpusError, match="no utterances"):
        discover("folder", tmp_path)


def test_split_is_deterministic_and_mostly_train() -> None:
    splits = [split_of(f"utt_{i}") for i in range(2000)]
    assert splits == [split_of(f"utt_{i}") for i in range(2000)]
    assert 0.85 < splits.count("train") / 2000 < 0.95
    assert splits.count("valid") > 50 and splits.count("test") > 50
