"""Short synthetic 'utterances' and honestly degraded versions of them for the evaluation and MOS tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal

from vocoder.audio import save_wav

RATE = 16000


def utterance(seed: int, seconds: float = 0.8, sample_rate: int = RATE, f0: float | None = None) -> np.ndarray:
    """Silence, a voiced stretch (harmonics on a gliding F0, syllable-like envelope, breath noise), silence."""
    rng = np.random.default_rng(seed)
    base = f0 or 110.0 + 25.0 * seed
    voiced = int((seconds - 0.2) * sample_rate)
    t = np.arange(voiced) / sample_rate
    pitch = base * (1.0 + 0.15 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wav = sum(0.25 / k * np.sin(k * phase) for k in range(1, 12) if k * base * 1.2 < sample_rate / 2)
    wav = wav * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2) * np.hanning(voiced) ** 0.3
    wav = wav + 0.01 * rng.standard_normal(voiced)
    silence = np.zeros(int(0.1 * sample_rate))
    return np.concatenate([silence, wav, silence]).astype(np.float32)


def low_passed(wav: np.ndarray, cutoff: float = 2000.0, sample_rate: int = RATE) -> np.ndarray:
    return signal.sosfiltfilt(signal.butter(8, cutoff, fs=sample_rate, output="sos"), wav).astype(np.float32)


def mu_law_quantised(wav: np.ndarray, bits: int = 4) -> np.ndarray:
    mu = 2**bits - 1
    companded = np.sign(wav) * np.log1p(mu * np.abs(wav)) / np.log1p(mu)
    levels = np.round((companded + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(levels) * np.expm1(np.abs(levels) * np.log1p(mu)) / mu).astype(np.float32)


def write_corpus(root: Path, count: int = 2, seconds: float = 0.8, skip_mulaw: tuple[str, ...] = ()) -> dict[str, Path]:
    """reference/, lowpass/ and mulaw/ directories of `count` utterances (mulaw lacks `skip_mulaw`)."""
    dirs = {name: root / name for name in ("reference", "lowpass", "mulaw")}
    for index in range(count):
        name = f"utt{index}"
        wav = utterance(index, seconds)
        save_wav(dirs["reference"] / f"{name}.wav", wav, RATE)
        save_wav(dirs["lowpass"] / f"{name}.wav", low_passed(wav), RATE)
        if name not in skip_mulaw:
            save_wav(dirs["mulaw"] / f"{name}.wav", mu_law_quantised(wav), RATE)
    return dirs
