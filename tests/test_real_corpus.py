"""Real recorded speech from Debian packages: the festvox layout, G.722 decoding, installation checks, and the
mixed feature caches `vocoder corpus real` builds (on small stand-ins for the installed directories)."""

from __future__ import annotations

import array
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_config, tone
from vocoder.audio import load_wav, save_wav
from vocoder.corpus import real
from vocoder.corpus.layouts import discover
from vocoder.corpus.real import RealCorpusError, RealSource, build_real_corpus, ensure_installed


def festvox_voice(root: Path, count: int = 4) -> Path:
    """A Festvox voice build as festvox-ru installs it: wav/, etc/txt.done.data."""
    (root / "wav").mkdir(parents=True)
    (root / "etc").mkdir()
    prompts = []
    for index in range(count):
        save_wav(root / "wav" / f"ru_{index:04d}.wav", tone(0.6, 110 + 20 * index), 16000)
        prompts.append(f'( ru_{index:04d} "предложение {index}" )')
    (root / "etc" / "txt.done.data").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return root


def test_festvox_layout_reads_a_voice_build_with_its_prompts(tmp_path: Path) -> None:
    voice = festvox_voice(tmp_path / "msu_ru_nsh_clunits")
    items = discover("festvox", voice)
    assert [item.id for item in items] == [f"msu_ru_nsh_clunits_ru_{i:04d}" for i in range(4)]
    assert {item.speaker for item in items} == {"msu_ru_nsh_clunits"}
    assert items[2].text == "предложение 2"
    assert discover("arctic", voice) == items  # ARCTIC is a Festvox build: one reader for both names


def test_g722_files_decode_to_16_khz_wavs(tmp_path: Path) -> None:
    import G722

    source = tmp_path / "en_US_f_Allison"
    source.mkdir()
    wav = tone(0.5, 200) * 0.5
    pcm = array.array("h", (wav * 32767).astype(np.int16).tobytes())
    (source / "hello.g722").write_bytes(G722.G722(16000, 64000).encode(pcm))
    (source / "notes.txt").write_text("not audio")
    corpus = real._decode_g722(source, tmp_path / "corpus")
    decoded = load_wav(corpus / "en_us_f_allison" / "hello.wav", 16000)
    assert len(decoded) == len(wav)
    delay = 22  # G.722's QMF filters delay the signal by 22 samples at 16 kHz
    correlation = np.corrcoef(decoded[delay + 100 :], wav[100 : len(wav) - delay])[0, 1]
    assert correlation > 0.95
    assert sorted(p.name for p in (corpus / "en_us_f_allison").iterdir()) == ["hello.wav"]


def test_missing_packages_name_the_command_that_installs_them(tmp_path: Path) -> None:
    absent = RealSource("x", "some-package", tmp_path / "absent", "folder", "train", real._link)
    with pytest.raises(RealCorpusError, match=r"apt-get install -y -qq some-package"):
        ensure_installed([absent], install=False)
    ensure_installed([RealSource("y", "p", tmp_path, "folder", "train", real._link)], install=False)  # present


def test_a_link_never_replaces_a_directory_the_user_made(tmp_path: Path) -> None:
    mine = tmp_path / "corpus"
    mine.mkdir()
    with pytest.raises(RealCorpusError, match="is not a link to"):
        real._link(festvox_voice(tmp_path / "voice"), mine)


def test_build_real_corpus_makes_one_cache_per_source_with_fixed_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = festvox_voice(tmp_path / "voice", count=6)
    words = tmp_path / "sounds"
    for language, freq in (("en", 150), ("de", 210)):
        (words / language).mkdir(parents=True)
        stereo = np.stack([tone(0.5, freq, 44100)] * 2, axis=1)
        save_wav(words / language / "ball.wav", stereo, 44100)  # stereo, 44.1 kHz
    (words / "de" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    sources = {
        "festvox-ru": RealSource("festvox-ru", "festvox-ru", voice, "festvox", "train", real._link),
        "ktuberling": RealSource("ktuberling", "ktuberling-data", words, "folder", "unseen", real._link),
    }
    monkeypatch.setattr(real, "SOURCES", sources)
    summary = build_real_corpus(tmp_path / "out", tiny_config(speakers=[]), ["festvox-ru", "ktuberling"], jobs=1)
    assert sum(summary["festvox-ru"]["utterances"].values()) == 6  # split by a hash of each id: fixed everywhere
    assert summary["ktuberling"]["role"] == "unseen"
    assert sum(summary["ktuberling"]["utterances"].values()) == 2
    assert summary["ktuberling"]["skipped"] == 1  # the broken file is reported, not fatal
    assert json.loads((tmp_path / "out" / "sources.json").read_text()) == summary
    report = json.loads((tmp_path / "out" / "feats" / "ktuberling" / "report.json").read_text())
    assert report["skipped"][0]["id"] == "de_broken"
    # a second run reuses every cached utterance
    again = build_real_corpus(tmp_path / "out", tiny_config(speakers=[]), ["festvox-ru", "ktuberling"], jobs=1)
    assert again == summary
    with pytest.raises(RealCorpusError, match="unknown sources"):
        build_real_corpus(tmp_path / "out", tiny_config(), ["librispeech"])
