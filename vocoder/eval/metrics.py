"""Objective speech-quality metrics of a system waveform against its reference.

Definitions (docs/EVALUATION.md repeats them for readers of the reports):

* MCD: WORLD analysis (Harvest F0, CheapTrick power envelope, 5 ms frames). The mel-cepstrum is the real cepstrum
  of the natural-log power envelope resampled onto the all-pass-warped frequency axis (alpha per sample rate,
  `MCEP_ALPHA`), i.e. what `pysptk.sp2mc` computes; coefficients 1..24 (c0, the energy, is left out).
  Per frame MCD = 10 / ln(10) * sqrt(2 * sum_d (c_d - c'_d)^2) dB, averaged over the DTW path between the two
  sequences of speech frames (frames within 40 dB of each signal's loudest frame).
* log-F0 RMSE in cents (1200 * log2 ratio) on DTW-aligned frames voiced in both; V/UV error: the share of
  aligned frames whose voicing decisions differ; voiced share: the share of the system's own speech frames in
  which Harvest finds an F0 (a breathy vocoder scores low; recordings of speech about 0.8).
* PESQ wide-band (ITU-T P.862.2) and STOI at 16 kHz; multi-resolution STFT distance (spectral convergence plus
  mean absolute log-magnitude difference, averaged over three resolutions); DNSMOS P.835 (OVRL/SIG/BAK), a
  non-intrusive estimate that is only indicative.

PESQ, STOI and the STFT distance compare samples at the same times, so they only mean something for outputs
time-aligned with the reference (copy-synthesis); MCD and F0 use DTW and also suit TTS outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np
import pyworld

from vocoder.audio import full_scale
from vocoder.errors import VocoderError

FRAME_PERIOD_MS = 5.0
MCEP_ORDER = 24
SPEECH_FLOOR_DB = 40.0
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)
MCEP_ALPHA = {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466, 44100: 0.544, 48000: 0.554}
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
DNSMOS_RATE = 16000
DNSMOS_SECONDS = 9.01


@dataclass(frozen=True)
class SpectralF0Scores:
    """MCD and F0 scores of one pair; NaN where a metric has no frames to work on."""

    mcd_db: float
    f0_rmse_cents: float
    vuv_error: float
    voiced: float  # of the system's speech frames, not aligned: comparable across systems of one reference


def _world(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 (0 where unvoiced) and CheapTrick power envelope, one row per 5 ms frame (read-only arrays)."""
    return _world_analysis(wav.astype(np.float64).tobytes(), sample_rate)


@lru_cache(maxsize=2)
def _world_analysis(samples: bytes, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """`_world` of float64 samples, the last two kept: `bench quality` and `evaluate` score every system of an
    utterance against its reference, which Harvest (most of a score's time) then analyses once, not per system."""
    x = np.frombuffer(samples, dtype=np.float64).copy()
    f0, times = pyworld.harvest(x, sample_rate, frame_period=FRAME_PERIOD_MS)
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate)
    f0.flags.writeable = envelope.flags.writeable = False
    return f0, envelope


def mcep_alpha(sample_rate: int) -> float:
    """The all-pass constant that makes the warped axis approximate the mel scale at this sample rate."""
    if sample_rate not in MCEP_ALPHA:
        raise VocoderError(
            f"sample rate {sample_rate} Hz has no mel-cepstrum warping constant; use one of {sorted(MCEP_ALPHA)}"
        )
    return MCEP_ALPHA[sample_rate]


def mel_cepstrum(envelope: np.ndarray, sample_rate: int, order: int = MCEP_ORDER) -> np.ndarray:
    """Mel-cepstral coefficients 1..order of each power-envelope row (frames x order)."""
    alpha = mcep_alpha(sample_rate)
    bins = envelope.shape[1]
    warped = np.linspace(0.0, np.pi, bins)
    # The frequency that lands on each uniformly spaced warped frequency: the all-pass warp with -alpha.
    linear = warped - 2.0 * np.arctan(alpha * np.sin(warped) / (1.0 + alpha * np.cos(warped)))
    grid = np.linspace(0.0, np.pi, bins)
    log_power = np.log(np.maximum(envelope, 1e-16))
    resampled = np.stack([np.interp(linear, grid, row) for row in log_power])
    cepstrum = np.fft.irfft(resampled, axis=1)
    return cepstrum[:, 1 : order + 1]


def speech_mask(wav: np.ndarray, sample_rate: int, frames: int) -> np.ndarray:
    """Frames (on the WORLD grid) whose energy is within SPEECH_FLOOR_DB of the loudest frame."""
    hop = round(sample_rate * FRAME_PERIOD_MS / 1000)
    rms = librosa.feature.rms(y=wav, frame_length=4 * hop, hop_length=hop, center=True)[0]
    rms = np.pad(rms, (0, max(0, frames - rms.size)), mode="edge")[:frames]
    level = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return level > level.max() - SPEECH_FLOOR_DB


def spectral_f0_scores(reference: np.ndarray, system: np.ndarray, sample_rate: int) -> SpectralF0Scores:
    """MCD, log-F0 RMSE and V/UV error on the DTW alignment of the two signals' speech frames."""
    ref_f0, ref_env = _world(reference, sample_rate)
    sys_f0, sys_env = _world(system, sample_rate)
    ref_keep = speech_mask(reference, sample_rate, ref_f0.size)
    sys_keep = speech_mask(system, sample_rate, sys_f0.size)
    ref_mcep = mel_cepstrum(ref_env[ref_keep], sample_rate)
    sys_mcep = mel_cepstrum(sys_env[sys_keep], sample_rate)
    _, path = librosa.sequence.dtw(X=ref_mcep.T, Y=sys_mcep.T, metric="euclidean")
    path = path[::-1]
    ref_idx, sys_idx = path[:, 0], path[:, 1]
    differences = ref_mcep[ref_idx] - sys_mcep[sys_idx]
    mcd = float(np.mean(MCD_CONSTANT * np.sqrt(np.sum(differences**2, axis=1))))
    ref_path_f0 = ref_f0[ref_keep][ref_idx]
    sys_path_f0 = sys_f0[sys_keep][sys_idx]
    ref_voiced, sys_voiced = ref_path_f0 > 0, sys_path_f0 > 0
    both = ref_voiced & sys_voiced
    cents = 1200.0 * np.log2(sys_path_f0[both] / ref_path_f0[both]) if both.any() else np.array([])
    f0_rmse = float(np.sqrt(np.mean(cents**2))) if cents.size else math.nan
    vuv = float(np.mean(ref_voiced != sys_voiced))
    voiced = float(np.mean(sys_f0[sys_keep] > 0))
    return SpectralF0Scores(mcd_db=mcd, f0_rmse_cents=f0_rmse, vuv_error=vuv, voiced=voiced)


def _same_length(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.size, b.size)
    return a[:n], b[:n]


def pesq_wb(reference_16k: np.ndarray, system_16k: np.ndarray) -> float:
    """Wide-band PESQ (MOS-LQO); NaN when PESQ finds no speech or the signal is too short for it."""
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    try:
        return float(pesq(DNSMOS_RATE, reference_16k, system_16k, "wb"))
    except (NoUtterancesError, BufferTooShortError):
        return math.nan


def stoi(reference_16k: np.ndarray, system_16k: np.ndarray) -> float:
    """Short-time objective intelligibility (0..1) on the common length of the two signals."""
    from pystoi import stoi as pystoi_stoi

    ref, sys = _same_length(reference_16k, system_16k)
    return float(pystoi_stoi(ref.astype(np.float64), sys.astype(np.float64), DNSMOS_RATE))


def mrstft_distance(reference: np.ndarray, system: np.ndarray) -> float:
    """Spectral convergence + mean |log-magnitude difference|, averaged over STFT_RESOLUTIONS (0 = identical)."""
    ref, sys = _same_length(reference, system)
    total = 0.0
    for n_fft, hop, window in STFT_RESOLUTIONS:
        ref_mag, sys_mag = (np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=window)) for x in (ref, sys))
        convergence = np.linalg.norm(ref_mag - sys_mag) / max(np.linalg.norm(ref_mag), 1e-12)
        log_distance = np.mean(np.abs(np.log(np.maximum(ref_mag, 1e-7)) - np.log(np.maximum(sys_mag, 1e-7))))
        total += convergence + log_distance
    return float(total / len(STFT_RESOLUTIONS))


def dnsmos(wav_16k: np.ndarray) -> dict[str, float]:
    """DNSMOS P.835 OVRL/SIG/BAK; clips shorter than the model's 9.01 s window are repeated to fill it."""
    from speechmos import dnsmos as speechmos_dnsmos

    window = int(DNSMOS_SECONDS * DNSMOS_RATE)
    clip = full_scale(wav_16k).astype(np.float32)
    if clip.size < window:
        clip = np.resize(clip, window)
    scores = speechmos_dnsmos.run(clip, DNSMOS_RATE)
    return {
        "dnsmos_ovrl": float(scores["ovrl_mos"]),
        "dnsmos_sig": float(scores["sig_mos"]),
        "dnsmos_bak": float(scores["bak_mos"]),
    }
