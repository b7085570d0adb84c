"""Acoustic conditioning from a waveform: log-mel spectrogram, F0 with a voiced flag and continuous log-F0.

Frame i covers samples [i * hop, (i + 1) * hop); an utterance of n samples has ceil(n / hop) frames and the
waveform it conditions is zero-padded to frames * hop samples. Every parameter comes from the config.
"""

from __future__ import annotations

import librosa
import numpy as np

from vocoder.config import Config, FeatureConfig
from vocoder.features.featurefile import Features
from vocoder.vocabulary import F0_ARRAYS


def frame_count(n_samples: int, hop_length: int) -> int:
    return -(-n_samples // hop_length)


def pad_to_frames(wav: np.ndarray, hop_length: int) -> np.ndarray:
    """Zero-pad the end so the waveform holds a whole number of frames."""
    target = frame_count(len(wav), hop_length) * hop_length
    return np.pad(wav, (0, target - len(wav))).astype(np.float32, copy=False)


def log_mel(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """`[frames, n_mels]` natural-log mel magnitudes, clipped below at `log_floor`."""
    padded = pad_to_frames(wav, cfg.hop_length)
    mel = librosa.feature.melspectrogram(
        y=padded,
        sr=sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        power=1.0,
        center=True,
        pad_mode="reflect",
    )
    frames = len(padded) // cfg.hop_length
    return np.log(np.maximum(mel[:, :frames], cfg.log_floor)).T.astype(np.float32)


def continuous_log_f0(f0: np.ndarray) -> np.ndarray:
    """log-F0 with unvoiced stretches filled by linear interpolation (ends held flat); all zeros if unvoiced."""
    voiced = f0 > 0
    if not voiced.any():
        return np.zeros_like(f0, dtype=np.float32)
    positions = np.arange(len(f0))
    return np.interp(positions, positions[voiced], np.log(f0[voiced])).astype(np.float32)


def f0_features(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """`(lf0, vuv)`, each `[frames]`: WORLD's F0 (dio + stonemask, or harvest) on the frame grid."""
    import pyworld  # here: a machine that only trains from packs (their F0 travels with them) may lack it

    padded = pad_to_frames(wav, cfg.hop_length).astype(np.float64)
    frames = len(padded) // cfg.hop_length
    period_ms = 1000.0 * cfg.hop_length / sample_rate
    if cfg.f0_method == "harvest":
        f0, _ = pyworld.harvest(padded, sample_rate, cfg.f0_floor, cfg.f0_ceil, frame_period=period_ms)
    else:
        coarse, times = pyworld.dio(padded, sample_rate, cfg.f0_floor, cfg.f0_ceil, frame_period=period_ms)
        f0 = pyworld.stonemask(padded, coarse, times, sample_rate)
    f0 = np.pad(f0, (0, max(0, frames - len(f0))))[:frames]
    vuv = (f0 > 0).astype(np.float32)
    return continuous_log_f0(f0), vuv


def extract_features(wav: np.ndarray, config: Config, speaker: str | None = None, source: str = "<memory>") -> Features:
    """Compute every acoustic array the config's models read or sample by (`Config.extracted_arrays`: mel, lf0,
    vuv)."""
    cfg, rate = config.features, config.audio.sample_rate
    wanted = config.extracted_arrays()
    arrays: dict[str, np.ndarray] = {}
    if "mel" in wanted:
        arrays["mel"] = log_mel(wav, rate, cfg)
    if set(F0_ARRAYS) & set(wanted):
        arrays["lf0"], arrays["vuv"] = f0_features(wav, rate, cfg)
    if "linguistic" in cfg.conditioning:
        raise ValueError(
            f"config '{config.name}' conditions on linguistic features, which come from labels, not audio: "
            "use the text front end or corpus preprocessing"
        )
    return Features(sample_rate=rate, hop_length=cfg.hop_length, speaker=speaker, source=source, **arrays)
