"""The waveform discriminator of the student's adversarial term: a small multi-period discriminator (HiFi-GAN).

A view of period p pads the waveform `[B, T]` to a multiple of p (reflected) and reshapes it to `[B, 1, T / p, p]`:
column j holds samples j, j + p, j + 2p, ... Convolutions of kernel `(k, 1)` then run along each column with shared
weights, strided in time, so every feature compares samples exactly p apart: a waveform that repeats with a period
near a multiple of p looks different from noise with the same spectrum. Periods 2, 3, 5, 7, 11 (HiFi-GAN's) cover
pitch periods as their multiples. The convs are narrow (16-128 channels) so the discriminator trains on CPU beside
the student for a small part of a distillation step. It is unconditional (as HiFi-GAN's): the KL and spectral
losses already tie the sample to its conditioning.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from vocoder.config import DiscriminatorConfig

LEAK = 0.1
"""Negative slope of the LeakyReLU between convs (HiFi-GAN's)."""


class PeriodDiscriminator(nn.Module):
    """One period's view: strided `(k, 1)` convs, one unstrided, and a 1-channel score map."""

    def __init__(self, period: int, settings: DiscriminatorConfig) -> None:
        super().__init__()
        self.period = period
        k, pad = settings.kernel_size, (settings.kernel_size - 1) // 2
        widths = [1, *settings.channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(inner, outer, (k, 1), (settings.stride, 1), (pad, 0))
            for inner, outer in itertools.pairwise(widths)
        )
        self.convs.append(nn.Conv2d(widths[-1], widths[-1], (k, 1), 1, (pad, 0)))
        self.score = nn.Conv2d(widths[-1], 1, (3, 1), 1, (1, 0))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`waveform [B, T]` -> (scores `[B, N]`, the activations after every conv, for feature matching)."""
        batch, length = waveform.shape
        pad = -length % self.period
        x = waveform[:, None]
        if pad:
            x = F.pad(x, (0, pad), mode="reflect" if pad < length else "constant")
        h = x.view(batch, 1, -1, self.period)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), LEAK)
            features.append(h)
        scores = self.score(h)
        features.append(scores)
        return scores.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    """One `PeriodDiscriminator` per configured period; each judges the whole waveform."""

    def __init__(self, settings: DiscriminatorConfig) -> None:
        super().__init__()
        self.views = nn.ModuleList(PeriodDiscriminator(period, settings) for period in settings.periods)

    def forward(self, waveform: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """`waveform [B, T]` -> each view's (scores, features)."""
        return [view(waveform) for view in self.views]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
