"""Spectral losses of a generated waveform against the real audio.

The Parallel WaveNet student trains with them beside density distillation ("without which students whisper"): a log
power-spectrum loss over time-averaged STFT power, and a multi-resolution STFT loss (spectral convergence plus log
magnitude distance).
"""

from __future__ import annotations

import torch

MAGNITUDE_FLOOR = 1e-7
"""Added under square roots and logs of spectra, so silent frames have finite values and gradients."""

POWER_FLOOR = 1e-4
"""Added to time-averaged STFT powers before the log: about 75 dB below a full-scale sine at the first resolution,
so the power loss ignores differences in near-silence instead of being dominated by them."""


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, window: int) -> torch.Tensor:
    """`[B, T]` -> `[B, n_fft // 2 + 1, frames]` magnitudes (Hann window), with a floor that keeps gradients finite."""
    hann = torch.hann_window(window, dtype=wav.dtype, device=wav.device)
    spectrum = torch.stft(wav, n_fft, hop, window, hann, center=True, return_complex=True)
    return torch.sqrt(spectrum.real.square() + spectrum.imag.square() + MAGNITUDE_FLOOR)


def power_loss(generated: torch.Tensor, reference: torch.Tensor, resolution: tuple[int, int, int]) -> torch.Tensor:
    """Mean squared difference of the log power spectra averaged over time (the paper's power loss, in log form so
    that its scale does not depend on the level of the audio)."""
    powers = [stft_magnitude(wav, *resolution).square().mean(-1) for wav in (generated, reference)]
    return (torch.log(powers[0] + POWER_FLOOR) - torch.log(powers[1] + POWER_FLOOR)).square().mean()


def multi_resolution_stft_loss(
    generated: torch.Tensor, reference: torch.Tensor, resolutions: list[tuple[int, int, int]]
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence ||Y - X||_F / ||Y||_F plus mean |log Y - log X|."""
    total = generated.new_zeros(())
    for resolution in resolutions:
        x, y = stft_magnitude(generated, *resolution), stft_magnitude(reference, *resolution)
        convergence = torch.linalg.norm(y - x, dim=(1, 2)) / torch.linalg.norm(y, dim=(1, 2))
        total = total + convergence.mean() + (torch.log(y) - torch.log(x)).abs().mean()
    return total / len(resolutions)
