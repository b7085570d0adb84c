"""Linear prediction from the mel spectrogram: the spectral envelope a model with `model.lpc_order > 0` predicts each
sample from (LPCNet's excitation model), so the network only has to model the residual.

The stored mel (`acoustic.log_mel`) is the natural log of librosa's mel magnitudes (power 1, Slaney filters, clipped
at `log_floor`, no other normalisation). Per frame: exp, back to a linear magnitude spectrum through the
filterbank's pseudo-inverse (clamped to a tiny floor), squared, times the pre-emphasis filter's power response when
the model works on the pre-emphasised signal, autocorrelation by inverse FFT, a Gaussian lag window and a white-noise
correction (so flat and silent frames stay well conditioned), then Levinson-Durbin in float64. Frame f's
coefficients apply to samples `[f * hop, (f + 1) * hop)`, the frame the conditioning upsampler assigns them to.
"""

from __future__ import annotations

import math
from functools import lru_cache

import librosa
import numpy as np
import torch
from torch.nn import functional as F

from vocoder.audio import mu_law_encode
from vocoder.config import Config

LAG_WINDOW_HZ = 60.0
"""Standard deviation of the Gaussian lag window (as a frequency): widens the sharpest formant peaks slightly."""
WHITE_NOISE = 1e-4
"""White-noise correction: r[0] is raised by this fraction (noise 40 dB below the frame), so the normal equations
stay positive definite on flat or silent frames."""
MAGNITUDE_FLOOR = 1e-10
"""The pseudo-inverse can go negative between bands; magnitudes are clamped here (zero would make silence singular)."""


def levinson(autocorrelation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`r [..., order + 1]` -> (predictor `c [..., order]`, reflection coefficients `k [..., order]`), where
    `c` solves the Yule-Walker equations `toeplitz(r[:order]) c = r[1:]`, so `p_t = sum_k c_k s_(t-k)`. The
    recursion stays minimum-phase exactly when every `|k| < 1` (a positive-definite `r`)."""
    r = autocorrelation
    order = r.shape[-1] - 1
    predictor = torch.zeros(*r.shape[:-1], order, dtype=r.dtype, device=r.device)
    reflections = torch.zeros_like(predictor)
    error = r[..., 0]
    for i in range(order):
        previous = predictor[..., :i]
        k = (r[..., i + 1] - (previous * r[..., 1 : i + 1].flip(-1)).sum(-1)) / error
        predictor = predictor.clone()
        predictor[..., :i] = previous - k.unsqueeze(-1) * previous.flip(-1)
        predictor[..., i] = k
        reflections[..., i] = k
        error = error * (1 - k * k)
    return predictor, reflections


@lru_cache(maxsize=8)
def _spectral_tables(
    rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, preemphasis: float, order: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mel pseudo-inverse `[n_mels, bins]`, pre-emphasis power response `[bins]`, lag window `[order + 1]`),
    float64 on the CPU."""
    basis = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    inverse = torch.from_numpy(np.linalg.pinv(basis.astype(np.float64)).T.copy())
    omega = torch.linspace(0, math.pi, n_fft // 2 + 1, dtype=torch.float64)
    emphasis = 1 + preemphasis * preemphasis - 2 * preemphasis * torch.cos(omega)
    lags = torch.arange(order + 1, dtype=torch.float64)
    lag_window = torch.exp(-0.5 * (2 * math.pi * LAG_WINDOW_HZ * lags / rate) ** 2)
    return inverse, emphasis, lag_window


def mel_autocorrelation(frames: torch.Tensor, config: Config) -> torch.Tensor:
    """Frame-rate conditioning `[B, frames, C]` (the model's columns) -> windowed, noise-corrected autocorrelation
    `[B, frames, lpc_order + 1]` float64 of the signal the model predicts."""
    features = config.features
    tables = _spectral_tables(
        config.audio.sample_rate,
        features.n_fft,
        features.n_mels,
        features.fmin,
        features.fmax,
        config.audio.preemphasis,
        config.model.lpc_order,
    )
    inverse, emphasis, lag_window = (table.to(frames.device) for table in tables)
    log_mel = frames[..., config.features.columns("mel")].to(torch.float64)
    magnitude = (log_mel.exp() @ inverse).clamp(min=MAGNITUDE_FLOOR)
    power = magnitude * magnitude * emphasis
    r = torch.fft.irfft(power, n=config.features.n_fft)[..., : config.model.lpc_order + 1] * lag_window
    return torch.cat([r[..., :1] * (1 + WHITE_NOISE), r[..., 1:]], dim=-1)


def frame_lpc(frames: torch.Tensor, config: Config) -> torch.Tensor:
    """Frame-rate conditioning `[B, frames, C]` -> float32 predictor coefficients `[B, frames, lpc_order]`."""
    if config.model.lpc_order < 1:
        raise ValueError(f"config '{config.name}' has no linear prediction (model.lpc_order is 0)")
    return levinson(mel_autocorrelation(frames, config))[0].to(torch.float32)


def predict(coefficients: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """One step of every generator: `coefficients [..., order]`, `history [..., order]` (newest first: s[t-1],
    ..., s[t-order]) -> `p_t [...]`; teacher forcing uses it too. Its rounding is fixed, so that every generator
    (the compiled kernel does exactly this) predicts bit for bit alike: products rounded to float32, zero-padded to
    a power of two, halves added pairwise (a `sum` reduces in an order torch does not fix)."""
    terms = coefficients * history
    width = 1 << (terms.shape[-1] - 1).bit_length()
    terms = F.pad(terms, (0, width - terms.shape[-1]))
    while width > 1:
        width //= 2
        terms = terms[..., :width] + terms[..., width:]
    return terms[..., 0]


def predict_signal(coefficients: torch.Tensor, signal: torch.Tensor, hop: int) -> torch.Tensor:
    """Teacher forcing: `p_t` for every sample of `signal [B, frames * hop]` from its own past (zeros before it),
    `coefficients [B, frames, order]` -> `[B, frames * hop]`."""
    return predict_samples(sample_coefficients(coefficients, hop, signal.shape[-1]), signal)


def sample_coefficients(coefficients: torch.Tensor, hop: int, steps: int) -> torch.Tensor:
    """Frame f's coefficients for each of its `hop` samples: `[B, frames, order]` -> `[B, steps, order]`."""
    return coefficients.repeat_interleave(hop, dim=1)[:, :steps]


def predict_samples(coefficients: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """`predict_signal` with a predictor per sample, `coefficients [B, T, order]` (distillation's contrastive term
    rotates them in time by a number of samples, not of frames). Differentiable in `signal`."""
    order = coefficients.shape[-1]
    padded = F.pad(signal, (order, 0))
    steps = signal.shape[-1]
    history = torch.stack([padded[:, order - k : order - k + steps] for k in range(1, order + 1)], dim=-1)
    return predict(coefficients, history)


def excitation_targets(
    signal: torch.Tensor, prediction: torch.Tensor, mu: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(excitation class ids `mu_law(clip(s - p))`, the signal's class ids, the prediction's class ids), each like
    `signal [B, T]`: what an LPC model is trained to predict, reads as its past, and reads as the prediction."""
    excitation = (signal - prediction).clamp(-1.0, 1.0)
    return mu_law_encode(excitation, mu), mu_law_encode(signal, mu), mu_law_encode(prediction, mu)


def prediction_gain_db(signal: np.ndarray, prediction: np.ndarray) -> float:
    """10 log10(signal energy / residual energy): how much of the signal the predictor explains."""
    residual = signal.astype(np.float64) - prediction
    return float(10 * np.log10(np.sum(signal.astype(np.float64) ** 2) / max(np.sum(residual**2), 1e-30)))
