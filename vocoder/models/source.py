"""A harmonic source for the student (NSF's sine source, Wang et al., 2019): deterministic periodic channels it reads
beside its conditioning, so a flow can put a voiced component into its location `mu` without building it from noise.

Per sample t: `vuv_t * sin(k * phi_t)` for k = 1..H, and `vuv_t`, where `phi_t = phase + 2 pi sum_(n<=t) f0_n / sr`
and `f0_n` is the frame's F0 (WORLD's, in Hz; 0 where unvoiced) held over the frame's `hop` samples. Harmonics at or
above Nyquist are zero. The phase runs on through unvoiced stretches unchanged (f0 = 0 adds nothing to it). The
frame F0 comes from the recording (`vocoder.features.source_f0`).
"""

from __future__ import annotations

import math

import torch


def harmonic_source(
    f0: torch.Tensor, hop: int, sample_rate: int, harmonics: int, phase: torch.Tensor | None = None
) -> torch.Tensor:
    """Frame F0 `[B, F]` in Hz (0: unvoiced) -> the source `[B, harmonics + 1, F * hop]`: H sines, then vuv.

    `phase [B]` (radians) starts each row's phase; None: 0. The running phase is summed in float64 and wrapped,
    so a long utterance's sines stay exact."""
    if f0.dim() != 2:
        raise ValueError(f"f0 must be [batch, frames], got shape {tuple(f0.shape)}")
    per_sample = f0.double().repeat_interleave(hop, dim=1)
    cycles = torch.cumsum(per_sample / sample_rate, dim=1)
    if phase is not None:
        cycles = cycles + phase.double()[:, None] / (2 * math.pi)
    angle = 2 * math.pi * torch.frac(cycles)
    k = torch.arange(1, harmonics + 1, dtype=torch.float64, device=f0.device)[None, :, None]
    voiced = (per_sample > 0).double()[:, None, :]
    below_nyquist = (k * per_sample[:, None, :] < sample_rate / 2).double()
    sines = torch.sin(k * angle[:, None, :]) * voiced * below_nyquist
    return torch.cat([sines, voiced], dim=1).to(f0.dtype if f0.is_floating_point() else torch.float32)
