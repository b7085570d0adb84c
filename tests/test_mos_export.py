"""`vocoder mos export`: balanced playlists, blinding, loudness normalisation, gold items, a self-contained page."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile
from typer.testing import CliRunner

from tests.eval_synthetic import RATE, write_corpus
from vocoder.audio import save_wav
from vocoder.cli.app import app
from vocoder.eval.mos_export import (
    PEAK_CEILING_DBFS,
    MosExportError,
    export_package,
    latin_square_cells,
    normalise_loudness,
)


@pytest.mark.parametrize(("utterances", "systems", "items", "listeners"), [(5, 3, 5, 6), (6, 4, 3, 8), (4, 2, 4, 3)])
def test_latin_square_rates_cells_evenly(utterances: int, systems: int, items: int, listeners: int) -> None:
    names_u = [f"u{i}" for i in range(utterances)]
    names_s = [f"s{i}" for i in range(systems)]
    playlists = latin_square_cells(names_u, names_s, listeners, items)
    counts = Counter(cell for cells in playlists for cell in cells)
    expected = listeners * items / (utterances * systems)
    assert len(counts) == min(utterances * systems, listeners * items)
    assert all(abs(count - expected) < 1 for count in counts.values())
    for cells in playlists:
        assert len({u for _, u in cells}) == items  # no utterance twice for one listener
        per_system = Counter(s for s, _ in cells)
        if items >= systems:
            assert max(per_system.values()) - min(per_system[s] for s in names_s) <= 1


def test_export_writes_a_blinded_self_contained_package(tmp_path: Path) -> None:
    dirs = write_corpus(tmp_path, count=3)
    package = tmp_path / "pkg"
    result = CliRunner().invoke(
        app,
        [
            "mos",
            "export",
            "--reference",
            str(dirs["reference"]),
            "--system",
            f"lowpass={dirs['lowpass']}",
            "--system",
            f"mulaw={dirs['mulaw']}",
            "--out",
            str(package),
            "--seed",
            "7",
            "--gold-per-kind",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    key = json.loads((tmp_path / "pkg.key.json").read_text())
    assert not list(package.rglob("*.json"))  # the key never goes inside
    page = (package / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no network resources
    assert "<link" not in page and "<script src" not in page
    assert "Playlist number, 1 to 2 " in page and 'id="playlist" min="1" max="2"' in page  # the valid range, shown
    for name in ("lowpass", "mulaw", "utt0", "reference", "anchor"):
        assert name not in page and not any(name in p.name for p in (package / "audio").iterdir())
    assert key["listeners"] == 2 and key["items_per_listener"] == 3
    stimuli = key["stimuli"]
    assert {f"{stimulus_id}.wav" for stimulus_id in stimuli} == {p.name for p in (package / "audio").iterdir()}
    for playlist in key["playlists"]:
        assert len(set(playlist["trials"])) == len(playlist["trials"])
        kinds = Counter(stimuli[s]["kind"] for s in playlist["trials"])
        assert kinds == {"test": 3, "gold_reference": 2, "gold_anchor": 2}
        assert playlist["completion_code"] in page
        assert all(stimuli[s]["kind"] == "familiarisation" for s in playlist["familiarisation"])
    meter = pyloudnorm.Meter(RATE)
    for stimulus_id, info in stimuli.items():
        wav, rate = soundfile.read(package / "audio" / f"{stimulus_id}.wav")
        assert rate == RATE
        assert 20 * np.log10(np.max(np.abs(wav))) <= PEAK_CEILING_DBFS + 0.01
        if not info["peak_limited"]:
            assert meter.integrated_loudness(wav) == pytest.approx(-23.0, abs=0.2)


def test_peak_limit_lowers_the_gain_instead_of_clipping() -> None:
    wav = np.zeros(RATE, dtype=np.float32)
    wav[::800] = 0.5  # clicks: a high peak for their loudness
    scaled, loudness, gain_db, limited = normalise_loudness(wav, RATE, -10.0, "clicks.wav")
    assert limited and gain_db < -10.0 - loudness
    assert 20 * np.log10(np.max(np.abs(scaled))) == pytest.approx(PEAK_CEILING_DBFS, abs=0.01)


def test_export_refuses_unsafe_or_impossible_requests(tmp_path: Path) -> None:
    dirs = write_corpus(tmp_path, count=2)
    systems = [("lowpass", dirs["lowpass"])]
    with pytest.raises(MosExportError, match="outside the package"):
        export_package(dirs["reference"], systems, tmp_path / "p1", key_path=tmp_path / "p1" / "key.json")
    with pytest.raises(MosExportError, match="items-per-listener 3"):
        export_package(dirs["reference"], systems, tmp_path / "p2", items_per_listener=3)
    (tmp_path / "p3").mkdir()
    (tmp_path / "p3" / "old.txt").write_text("x")
    with pytest.raises(MosExportError, match="not empty"):
        export_package(dirs["reference"], systems, tmp_path / "p3")
    save_wav(dirs["reference"] / "quiet.wav", np.zeros(RATE, dtype=np.float32), RATE)
    save_wav(dirs["lowpass"] / "quiet.wav", np.zeros(RATE, dtype=np.float32), RATE)
    with pytest.raises(MosExportError, match=r"quiet\.wav.*silent"):
        export_package(dirs["reference"], systems, tmp_path / "p4")
    assert not (tmp_path / "p4").exists() and not (tmp_path / ".p4.partial").exists()  # nothing half-written


def test_export_of_a_single_utterance_fits_the_gold_items_to_it(tmp_path: Path) -> None:
    """The default gold count shrinks to the utterances there are; only an explicit larger one is refused."""
    dirs = write_corpus(tmp_path, count=1)
    systems = [("lowpass", dirs["lowpass"]), ("mulaw", dirs["mulaw"])]
    key = export_package(dirs["reference"], systems, tmp_path / "pkg")
    kinds = Counter(key["stimuli"][s]["kind"] for s in key["playlists"][0]["trials"])
    assert kinds == {"test": 1, "gold_reference": 1, "gold_anchor": 1}
    with pytest.raises(MosExportError, match="--gold-per-kind 2: at most 1"):
        export_package(dirs["reference"], systems, tmp_path / "pkg2", gold_per_kind=2)


def _trial_cells(key: dict) -> list[list[tuple[str, str, str]]]:
    """Each playlist's trials as (kind, system, utterance), in the order listeners hear them."""
    stimuli = key["stimuli"]
    return [
        [(stimuli[s]["kind"], stimuli[s]["system"], stimuli[s]["utterance"]) for s in playlist["trials"]]
        for playlist in key["playlists"]
    ]


def test_export_order_is_shuffled_and_the_seed_reproduces_it(tmp_path: Path) -> None:
    """Blinding: stimulus names and trial order come from the seed; the same seed gives the same package (ids,
    order, audio), another seed the same cells in another order under other names."""
    dirs = write_corpus(tmp_path, count=4)
    systems = [("lowpass", dirs["lowpass"]), ("mulaw", dirs["mulaw"])]
    keys = {
        name: export_package(dirs["reference"], systems, tmp_path / name, listeners=4, seed=seed)
        for name, seed in (("a", 1), ("again", 1), ("b", 2))
    }
    same = ("stimuli", "playlists", "package_id")
    assert {k: keys["a"][k] for k in same} == {k: keys["again"][k] for k in same}
    for stimulus_id in keys["a"]["stimuli"]:
        audio = f"audio/{stimulus_id}.wav"
        assert (tmp_path / "a" / audio).read_bytes() == (tmp_path / "again" / audio).read_bytes()
    assert not set(keys["a"]["stimuli"]) & set(keys["b"]["stimuli"])  # names owe nothing to the content
    orders_a, orders_b = _trial_cells(keys["a"]), _trial_cells(keys["b"])
    for a, b in zip(orders_a, orders_b, strict=True):
        assert sorted(c for c in a if c[0] == "test") == sorted(c for c in b if c[0] == "test")  # same cells
    assert orders_a != orders_b  # heard in another order
    # Shuffled: the test items are not heard in the order the Latin square lists them (grouped by design).
    cells = latin_square_cells([f"utt{i}" for i in range(4)], ["lowpass", "mulaw"], 4, keys["a"]["items_per_listener"])
    heard = [[(system, utterance) for kind, system, utterance in order if kind == "test"] for order in orders_a]
    assert sorted(map(sorted, heard)) == sorted(map(sorted, cells))
    assert heard != cells
