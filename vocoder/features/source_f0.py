"""The frame F0 a student's harmonic source (`vocoder.models.source`) reads: WORLD's, measured on the recording
with the config's F0 settings, as `extract` measures `lf0`/`vuv`; for training, computed once per utterance of a
feature cache into a side folder (the caches themselves stay as they are)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocoder.audio import load_wav
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache
from vocoder.errors import VocoderError
from vocoder.features.acoustic import f0_features
from vocoder.features.featurefile import f0_hz

F0_SUFFIX = ".f0.npy"
"""A side file of one utterance's frame F0 in Hz, `[frames]` float32, 0 where unvoiced (`write_source_f0`)."""


def frame_f0(wav: np.ndarray, config: Config) -> np.ndarray:
    """A recording's frame F0 in Hz `[frames]`, 0 where unvoiced: WORLD with the config's F0 settings, as `extract`
    computes `lf0`/`vuv` (the source reads the voiced frames' F0 itself, not the interpolated log)."""
    return f0_hz(*f0_features(wav, config.audio.sample_rate, config.features))


def f0_path(f0_dir: Path, cache_root: Path, utterance_id: str) -> Path:
    """Where `write_source_f0` keeps an utterance's F0: `<f0_dir>/<cache folder name>/<id>.f0.npy`."""
    return f0_dir / cache_root.name / f"{utterance_id}{F0_SUFFIX}"


def write_source_f0(cache_root: Path, f0_dir: Path, config: Config) -> int:
    """Compute the frame F0 of every utterance of a feature cache (its recordings, all splits) once, into `f0_dir`;
    files already there are kept. Returns how many were written."""
    cache = FeatureCache(cache_root)
    written = 0
    for row in cache.read_manifest().values():
        path = f0_path(f0_dir, cache_root, row.id)
        if path.exists():
            continue
        wav = load_wav(cache.audio_path(row.id), config.audio.sample_rate)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npy")
        np.save(temporary, frame_f0(wav, config))
        temporary.replace(path)
        written += 1
    return written


def read_source_f0(f0_dir: Path, cache_root: Path, utterance_id: str, frames: int) -> np.ndarray:
    """An utterance's F0 side file, checked to cover its `frames` conditioning frames."""
    path = f0_path(f0_dir, cache_root, utterance_id)
    if not path.exists():
        raise VocoderError(f"{path}: no F0 for utterance {utterance_id!r}; write it with `vocoder source-f0`")
    f0 = np.load(path)
    if f0.shape != (frames,) or not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise VocoderError(f"{path}: expected {frames} finite F0 values >= 0 (Hz), found shape {f0.shape}")
    return f0.astype(np.float32, copy=False)
