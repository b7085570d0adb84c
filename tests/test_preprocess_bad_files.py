"""Preprocessing and damaged or odd corpus files (issue #15, item 12): a WAV whose header claims more audio than
the file holds is kept but flagged in report.json; a path with an audio suffix that is no audio file (a folder, a
symbolic link that loops or leads nowhere) is listed among the skipped with its reason, never silently left out."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from tests.conftest import tiny_config, tone
from vocoder.audio import save_wav
from vocoder.corpus.preprocess import preprocess

SECONDS = 1.0


def _manifest_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / "manifest.jsonl").read_text().splitlines()]


def _run(corpus: Path, out: Path) -> dict:
    return preprocess("folder", corpus, out, tiny_config(), jobs=1, progress=False)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus" / "kal"
    folder.mkdir(parents=True)
    save_wav(folder / "good.wav", tone(SECONDS), 16000)
    return folder


def _data_chunk(data: bytes) -> int:
    """The offset of the data chunk's size field in a canonical WAV file."""
    offset = data.index(b"data")
    return offset + 4


def test_a_truncated_wav_is_kept_and_flagged(corpus: Path, tmp_path: Path) -> None:
    save_wav(corpus / "whole.wav", tone(SECONDS), 16000)
    whole = (corpus / "whole.wav").read_bytes()
    (corpus / "whole.wav").unlink()
    cut = len(whole) * 6 // 10 + 1  # mid-sample too
    (corpus / "cut.wav").write_bytes(whole[:cut])
    report = _run(corpus.parent, tmp_path / "cache")
    assert report["skipped"] == []
    assert _manifest_ids(tmp_path / "cache") == ["kal_cut", "kal_good"]  # kept: its audio matches its features
    [entry] = report["flagged"]
    assert entry["id"] == "kal_cut" and entry["source"] == str(corpus / "cut.wav")
    declared, present = len(whole) - 44, cut - 44
    assert f"claims {declared} bytes of audio data, the file holds {present}" in entry["reason"]
    assert "truncated" in entry["reason"]
    again = _run(corpus.parent, tmp_path / "cache")  # reused, not processed again: still flagged
    assert (again["reused"], again["flagged"]) == (2, report["flagged"])


def test_a_header_claiming_more_data_than_the_file_holds_is_flagged(corpus: Path, tmp_path: Path) -> None:
    save_wav(corpus / "streamed.wav", tone(SECONDS), 16000)
    data = bytearray((corpus / "streamed.wav").read_bytes())
    size_field = _data_chunk(bytes(data))
    data[size_field : size_field + 4] = struct.pack("<I", 0xFFFFFFFF)  # what a writer to a pipe leaves
    (corpus / "streamed.wav").write_bytes(bytes(data))
    report = _run(corpus.parent, tmp_path / "cache")
    assert [entry["id"] for entry in report["flagged"]] == ["kal_streamed"]
    assert f"claims {0xFFFFFFFF} bytes" in report["flagged"][0]["reason"]
    assert _manifest_ids(tmp_path / "cache") == ["kal_good", "kal_streamed"]


def test_an_intact_wav_is_not_flagged(corpus: Path, tmp_path: Path) -> None:
    from vocoder.audio import wav_shortfall

    assert wav_shortfall(corpus / "good.wav") is None
    report = _run(corpus.parent, tmp_path / "cache")
    assert (report["written"], report["skipped"], report["flagged"]) == (1, [], [])


def test_a_folder_named_like_audio_is_skipped_and_reported(corpus: Path, tmp_path: Path) -> None:
    (corpus / "x.wav").mkdir()
    report = _run(corpus.parent, tmp_path / "cache")
    assert report["skipped"] == [
        {"id": "kal_x", "source": str(corpus / "x.wav"), "reason": "a directory, not an audio file"}
    ]
    assert _manifest_ids(tmp_path / "cache") == ["kal_good"]


def test_symbolic_links_that_loop_or_lead_nowhere_are_skipped_and_reported(corpus: Path, tmp_path: Path) -> None:
    os.symlink("loop.wav", corpus / "loop.wav")
    os.symlink("missing.wav", corpus / "dangling.wav")
    os.symlink("good.wav", corpus / "alias.wav")  # a link to audio is audio
    report = _run(corpus.parent, tmp_path / "cache")
    reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
    assert reasons == {
        "kal_loop": "a symbolic link that loops (following it never reaches a file)",
        "kal_dangling": "a symbolic link to a missing file (missing.wav)",
    }
    assert _manifest_ids(tmp_path / "cache") == ["kal_alias", "kal_good"]
