"""Training packs: caches' audio packed losslessly under a budget, and caches rebuilt from a pack with the same ids,
splits and samples (a lent GPU machine trains on them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

import vocoder.cli.corpus  # noqa: F401  (registers the commands)
from tests.conftest import tiny_config
from tests.test_train import build_cache
from vocoder.cli.app import app
from vocoder.corpus.pack import PackError, pack_caches, unpack
from vocoder.features.featurefile import read_features

CONFIG = tiny_config()
WITH_F0 = tiny_config(sampling={"voiced_temperature": 0.6})
"""A config whose caches also hold F0 (`lf0`, `vuv`): a teacher with voicing-tied sampling, or a sourced student."""


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two sources of harmonic tones with F0: six utterances each, the last of each a validation utterance."""
    root = tmp_path_factory.mktemp("caches")
    return [build_cache(root / name, WITH_F0, count=6, seconds=0.3) for name in ("alpha", "beta")]


def _rows(cache: Path) -> list[dict]:
    return [json.loads(line) for line in (cache / "manifest.jsonl").read_text().splitlines()]


def test_a_pack_with_room_for_everything_unpacks_into_the_same_caches(caches: list[Path], tmp_path: Path) -> None:
    index = pack_caches(caches, tmp_path / "pack", max_bytes=2**30)
    assert {name: entry["utterances"] for name, entry in index["sources"].items()} == {
        "alpha": {"train": 5, "valid": 1},
        "beta": {"train": 5, "valid": 1},
    }
    assert all(entry["f0"] for entry in index["sources"].values())
    packed_files = [*(tmp_path / "pack").rglob("*.flac"), *(tmp_path / "pack").rglob("f0/*.npz")]
    assert index["bytes"] == sum(path.stat().st_size for path in packed_files)
    written = unpack(tmp_path / "pack", tmp_path / "caches", WITH_F0, jobs=1)
    assert written == {"alpha": 6, "beta": 6}
    for cache in caches:
        rebuilt = tmp_path / "caches" / cache.name
        assert _rows(rebuilt) == _rows(cache)  # ids, speakers, splits, frames
        assert json.loads((rebuilt / "speakers.json").read_text()) == json.loads((cache / "speakers.json").read_text())
        for row in _rows(cache):
            original, _ = soundfile.read(str(cache / "audio" / f"{row['id']}.wav"), dtype="int16")
            copy, _ = soundfile.read(str(rebuilt / "audio" / f"{row['id']}.wav"), dtype="int16")
            np.testing.assert_array_equal(copy, original)  # FLAC is lossless: the same 16-bit samples
            # the cache's features came from the audio before its 16-bit rounding, the rebuilt ones after it
            features = read_features(rebuilt / "features" / f"{row['id']}.npz")
            reference = read_features(cache / "features" / f"{row['id']}.npz")
            loud = reference.mel > np.log(1e-2)
            assert loud.mean() > 0.2 and np.abs(features.mel - reference.mel)[loud].max() < 0.01
            np.testing.assert_array_equal(features.lf0, reference.lf0)  # F0 travels: no WORLD analysis there
            np.testing.assert_array_equal(features.vuv, reference.vuv)
    mel_only = unpack(tmp_path / "pack", tmp_path / "mel", CONFIG, jobs=1)  # a config that reads less: fine
    assert mel_only == written and read_features(tmp_path / "mel" / "alpha" / "features" / "utt0.npz").lf0 is None


def test_a_budget_takes_validation_first_then_each_source_in_proportion(caches: list[Path], tmp_path: Path) -> None:
    sizes = sorted(path.stat().st_size for cache in caches for path in (cache / "audio").glob("*.wav"))
    budget = sum(sizes) // 4  # 16-bit WAV to FLAC: room for about half of the utterances
    index = pack_caches(caches, tmp_path / "pack", max_bytes=budget)
    assert index["bytes"] <= budget
    counts = {name: entry["utterances"] for name, entry in index["sources"].items()}
    assert all(count["valid"] == 1 for count in counts.values())
    assert 1 <= counts["alpha"]["train"] < 5 and abs(counts["alpha"]["train"] - counts["beta"]["train"]) <= 1
    again = pack_caches(caches, tmp_path / "again", max_bytes=budget)
    assert again["sources"] == index["sources"]  # the same choice on every machine
    assert _rows(tmp_path / "pack" / "alpha") == _rows(tmp_path / "again" / "alpha")


def test_bad_packs_and_caches_are_refused_naming_the_file(caches: list[Path], tmp_path: Path) -> None:
    with pytest.raises(PackError, match="manifest.jsonl: missing"):
        pack_caches([tmp_path], tmp_path / "pack", max_bytes=2**20)
    pack_caches(caches, tmp_path / "pack", max_bytes=2**30)
    with pytest.raises(PackError, match="exists"):
        pack_caches(caches, tmp_path / "pack", max_bytes=2**30)
    other_hop = tiny_config(features={"hop_length": 80}, model={"upsample_scales": [10, 8]})
    with pytest.raises(PackError, match=r"alpha/features.json: the pack's audio .*same sample rate, mu and hop"):
        unpack(tmp_path / "pack", tmp_path / "out", other_hop, jobs=1)
    pack_caches([build_cache(tmp_path / "gamma", CONFIG, count=2)], tmp_path / "mel-pack", max_bytes=2**30)
    with pytest.raises(PackError, match=r"mel-pack/gamma: config .* reads F0 .*the pack carries none"):
        unpack(tmp_path / "mel-pack", tmp_path / "out", WITH_F0, jobs=1)
    next((tmp_path / "pack" / "beta" / "audio").glob("*.flac")).unlink()
    with pytest.raises(PackError, match=r"beta/audio/.*\.flac: missing"):
        unpack(tmp_path / "pack", tmp_path / "out", CONFIG, jobs=1)
    (tmp_path / "pack" / "pack.json").write_text("{")
    with pytest.raises(PackError, match=r"pack.json: not valid JSON"):
        unpack(tmp_path / "pack", tmp_path / "out", CONFIG, jobs=1)


def test_the_cli_packs_and_unpacks(caches: list[Path], tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(WITH_F0.model_dump(mode="json")))
    packed = CliRunner().invoke(
        app, ["corpus", "pack", *map(str, caches), "--out", str(tmp_path / "pack"), "--max-mb", "1"]
    )
    assert packed.exit_code == 0, packed.output
    assert "alpha: 5 training utterances" in packed.output and "1 validation" in packed.output
    unpacked = CliRunner().invoke(
        app,
        ["corpus", "unpack", str(tmp_path / "pack"), "--out", str(tmp_path / "feats"), "--config", str(config)],
    )
    assert unpacked.exit_code == 0, unpacked.output
    assert f"--data {tmp_path / 'feats' / 'alpha'} --data {tmp_path / 'feats' / 'beta'}" in unpacked.output
