"""Training packs: a size-capped, lossless copy of feature caches' audio that travels where the caches cannot.

A lent GPU machine takes the working tree and at most 64 MiB besides; the real-speech caches hold 490 MB, most of
it feature files that are cheap to recompute. A pack keeps only the audio, as FLAC (the caches' 16-bit samples, bit
for bit), of a share of each cache's training utterances chosen in proportion to its training seconds plus a few
validation utterances, with the cache's manifest rows and, where the cache holds them, each utterance's F0 arrays
(`lf0`, `vuv`: 3 % of the audio's bytes, and WORLD, which computes them, need not be installed where the pack goes).
`unpack` rebuilds a feature cache from it, its mel computed with a config's settings: the same ids, splits, audio
and F0, so a run there trains on the caches' data and the run's validation loss reads the same utterances.

PACK/pack.json                  format, bytes, and per source: its cache, utterances per split, seconds, F0 or not
PACK/<source>/manifest.jsonl    the packed rows of the source cache's manifest
PACK/<source>/features.json     the source cache's stamp (its audio settings and preprocessing)
PACK/<source>/audio/<id>.flac
PACK/<source>/f0/<id>.npz       lf0 and vuv, where the cache holds them
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from vocoder.atomic import atomic_path
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache, ManifestRow, feature_stamp
from vocoder.errors import VocoderError
from vocoder.features.acoustic import log_mel
from vocoder.features.featurefile import Features, read_features, save_features
from vocoder.vocabulary import F0_ARRAYS

PACK_FORMAT = 1
F0_SETTINGS = ("f0_method", "f0_floor", "f0_ceil", "hop_length")
"""What makes two caches' F0 arrays alike (with the sample rate)."""
PACK_INDEX = "pack.json"


class PackError(VocoderError):
    """A cache that cannot be packed or a pack that cannot be unpacked; says which file and why."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PackError(f"{path}: missing ({what})") from None
    except json.JSONDecodeError as error:
        raise PackError(f"{path}: not valid JSON ({what}): {error}") from None


def _manifest(cache: FeatureCache) -> list[ManifestRow]:
    if not cache.manifest_path.is_file():
        raise PackError(f"{cache.manifest_path}: missing; is {cache.root} a feature cache (vocoder preprocess)?")
    rows = []
    for number, line in enumerate(cache.manifest_path.read_text().splitlines(), 1):
        try:
            rows.append(ManifestRow(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise PackError(f"{cache.manifest_path}, line {number}: not a manifest row ({error})") from None
    return rows


def _order(row: ManifestRow) -> str:
    """A fixed pseudo-random order of a cache's utterances, the same on every machine."""
    return hashlib.sha1(f"pack:{row.id}".encode()).hexdigest()


def _flac(cache: FeatureCache, row: ManifestRow) -> bytes:
    """The cached 16-bit audio of `row` as FLAC bytes (integer samples in, so nothing is rescaled)."""
    path = cache.audio_path(row.id)
    try:
        info = soundfile.info(str(path))
        samples, rate = soundfile.read(str(path), dtype="int16")
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise PackError(f"{path}: unreadable ({error})") from None
    if info.subtype != "PCM_16" or samples.ndim != 1:
        raise PackError(f"{path}: expected 16-bit mono PCM (a feature cache's audio), found {info.subtype}")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return buffer.getvalue()


def _stamped_arrays(stamp: dict[str, Any]) -> list[str]:
    """The arrays a cache's feature files hold, by its stamp (`feature_stamp`)."""
    return stamp.get("arrays") or stamp.get("features", {}).get("conditioning", [])


def _f0(cache: FeatureCache, row: ManifestRow) -> bytes:
    """The cached `lf0` and `vuv` of `row` as a compressed .npz."""
    features = read_features(cache.feature_path(row.id))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, lf0=features.lf0, vuv=features.vuv)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def pack_caches(caches: list[Path], out: Path, max_bytes: int, valid_utterances: int = 8) -> dict[str, Any]:
    """Write a pack of `caches` at `out` (which must not exist) holding at most `max_bytes` of audio and F0;
    returns the index also written to pack.json. Each source gives its first `valid_utterances` validation
    utterances, then the training utterances are taken in turns, always from the source with the smallest share of
    its training seconds packed so far; one that would pass the budget is left out."""
    if out.exists():
        raise PackError(f"{out}: exists; a pack is written to a new directory")
    names = [cache.name for cache in caches]
    if len(set(names)) != len(names):
        raise PackError(f"caches {', '.join(map(str, caches))}: two share a folder name, which names a source")
    sources = {cache.name: FeatureCache(cache) for cache in caches}
    rows = {name: sorted(_manifest(cache), key=_order) for name, cache in sources.items()}
    stamps = {name: _read_json(cache.stamp_path, "a feature cache's stamp") for name, cache in sources.items()}
    has_f0 = {name: set(F0_ARRAYS) <= set(_stamped_arrays(stamp)) for name, stamp in stamps.items()}
    for name, stamp in stamps.items():
        if "linguistic" in stamp.get("features", {}).get("conditioning", []):
            raise PackError(
                f"{sources[name].stamp_path}: conditions on linguistic features, which come from labels a pack "
                "does not carry; pack caches of acoustic features (mel, F0)"
            )
    chosen: dict[str, list[ManifestRow]] = {name: [] for name in sources}
    used = 0

    def take(name: str, row: ManifestRow) -> bool:
        nonlocal used
        audio = _flac(sources[name], row)
        f0 = _f0(sources[name], row) if has_f0[name] else b""
        if used + len(audio) + len(f0) > max_bytes:
            return False
        _write_atomic(out / name / "audio" / f"{row.id}.flac", audio)
        if f0:
            _write_atomic(out / name / "f0" / f"{row.id}.npz", f0)
        chosen[name].append(row)
        used += len(audio) + len(f0)
        return True

    for name in sources:
        for row in [row for row in rows[name] if row.split == "valid"][:valid_utterances]:
            take(name, row)
    queues = {name: [row for row in rows[name] if row.split == "train"] for name in sources}
    totals = {name: sum(row.duration for row in queue) for name, queue in queues.items()}
    packed = dict.fromkeys(sources, 0.0)
    open_sources = [name for name in sources if queues[name]]
    while open_sources:
        name = min(open_sources, key=lambda source: (packed[source] / totals[source], source))
        row = queues[name].pop(0)
        if take(name, row):  # else it does not fit, and a shorter one after it may
            packed[name] += row.duration
        if not queues[name]:
            open_sources.remove(name)
    index: dict[str, Any] = {"format": PACK_FORMAT, "bytes": used, "max_bytes": max_bytes, "sources": {}}
    for name, cache in sources.items():
        picked = sorted(chosen[name], key=lambda row: row.id)
        manifest = "".join(json.dumps(asdict(row)) + "\n" for row in picked)
        _write_atomic(out / name / "manifest.jsonl", manifest.encode())
        _write_atomic(out / name / "features.json", json.dumps(stamps[name], indent=2, sort_keys=True).encode())
        index["sources"][name] = {
            "cache": str(cache.root),
            "utterances": {split: sum(row.split == split for row in picked) for split in ("train", "valid")},
            "f0": has_f0[name],
            "train_seconds": round(packed[name], 1),
            "of_train_seconds": round(totals[name], 1),
        }
    _write_atomic(out / PACK_INDEX, (json.dumps(index, indent=2) + "\n").encode())
    return index


def _unpack_one(source: Path, row: ManifestRow, config: Config, cache: FeatureCache) -> None:
    """Decode one packed utterance into the cache's 16-bit WAV, compute its mel from that audio and take its F0
    from the pack."""
    flac = source / "audio" / f"{row.id}.flac"
    samples, rate = soundfile.read(str(flac), dtype="int16")
    wav = io.BytesIO()
    soundfile.write(wav, samples, rate, format="WAV", subtype="PCM_16")
    _write_atomic(cache.audio_path(row.id), wav.getvalue())
    wanted = config.extracted_arrays()
    arrays: dict[str, np.ndarray] = {}
    if "mel" in wanted:
        arrays["mel"] = log_mel(samples.astype(np.float32) / 32768.0, rate, config.features)  # as load_wav reads it
    if set(F0_ARRAYS) & set(wanted):
        with np.load(source / "f0" / f"{row.id}.npz") as f0:
            arrays.update(lf0=f0["lf0"], vuv=f0["vuv"])
    features = Features(rate, config.features.hop_length, speaker=row.speaker, source=str(flac), **arrays)
    if features.n_frames != row.frames:
        raise PackError(f"{flac}: {features.n_frames} frames of features, its manifest row says {row.frames}")
    save_features(cache.feature_path(row.id), features)


def unpack(pack: Path, out: Path, config: Config, jobs: int | None = None) -> dict[str, int]:
    """Rebuild one feature cache per packed source under `out/<source>/`, its mel computed with `config` (whose
    sample rate, mu and hop must be the pack's) and its F0, where `config` reads it, the pack's (whose F0 settings
    must be the config's); returns the utterances written per source."""
    index = _read_json(pack / PACK_INDEX, "a pack's index (vocoder corpus pack)")
    if index.get("format") != PACK_FORMAT:
        raise PackError(f"{pack / PACK_INDEX}: format {index.get('format')!r}, this version reads {PACK_FORMAT}")
    if "linguistic" in config.features.conditioning:
        raise PackError(f"config '{config.name}' conditions on linguistic features, which a pack cannot give")
    needs_f0 = bool(set(F0_ARRAYS) & set(config.extracted_arrays()))
    written = {}
    for name in index["sources"]:
        stamp = _read_json(pack / name / "features.json", "the packed cache's stamp")
        expected = {"audio": stamp.get("audio"), "hop_length": stamp.get("features", {}).get("hop_length")}
        found = {"audio": config.audio.cache_stamp(), "hop_length": config.features.hop_length}
        if expected != found:
            raise PackError(
                f"{pack / name / 'features.json'}: the pack's audio is {expected}, config '{config.name}' reads "
                f"{found}; unpack with a config of the same sample rate, mu and hop"
            )
        if needs_f0:
            packed = {key: stamp.get("features", {}).get(key) for key in F0_SETTINGS}
            wanted = {key: getattr(config.features, key) for key in F0_SETTINGS}
            if not index["sources"][name].get("f0") or packed != wanted:
                raise PackError(
                    f"{pack / name}: config '{config.name}' reads F0 ({wanted}), the pack carries "
                    f"{packed if index['sources'][name].get('f0') else 'none'}; pack a cache with that F0, or unpack "
                    "with a config that reads the mel alone"
                )
        rows = _manifest(FeatureCache(pack / name))
        files = [pack / name / "audio" / f"{row.id}.flac" for row in rows]
        files += [pack / name / "f0" / f"{row.id}.npz" for row in rows] if needs_f0 else []
        for path in files:
            if not path.is_file():
                raise PackError(f"{path}: missing; the pack's manifest lists {path.stem}")
        cache = FeatureCache(out / name)
        cache.open(feature_stamp(config, stamp["preprocessing"]))
        workers = max(1, min(jobs or os.cpu_count() or 1, len(rows) or 1))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            sources = [pack / name] * len(rows)
            list(pool.map(_unpack_one, sources, rows, [config] * len(rows), [cache] * len(rows), chunksize=8))
        cache.finish(rows, {"unpacked_from": str(pack), "utterances": len(rows), "skipped": [], "flagged": []})
        written[name] = len(rows)
    return written
