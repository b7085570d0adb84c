"""WaveNet building blocks: causal dilated convolution, the gated residual layer, the conditioning upsampler."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


class CausalConv1d(nn.Conv1d):
    """A dilated convolution padded on the left only, so output t sees inputs t - (k-1)d .. t and nothing later."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))

    def taps_matrix(self) -> torch.Tensor:
        """Weights as one `[kernel * in, out]` matrix over the taps stacked oldest first (for one-step updates)."""
        return self.weight.permute(2, 1, 0).reshape(-1, self.out_channels)


class GatedResidualLayer(nn.Module):
    """One WaveNet layer: dilated causal conv + conditioning -> tanh x sigmoid gate -> residual and skip 1x1s."""

    def __init__(
        self,
        residual_channels: int,
        gate_channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        local_channels: int,
        global_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.residual_channels = residual_channels
        self.dilation = dilation
        self.dropout = nn.Dropout(dropout)
        self.conv = CausalConv1d(residual_channels, gate_channels, kernel_size, dilation)
        self.local = nn.Conv1d(local_channels, gate_channels, 1, bias=False) if local_channels else None
        self.glob = nn.Linear(global_channels, gate_channels, bias=False) if global_channels else None
        # The residual and skip 1x1 convolutions, fused into one: [residual | skip] output channels.
        self.residual_skip = nn.Conv1d(gate_channels // 2, residual_channels + skip_channels, 1)

    def forward(
        self, x: torch.Tensor, local: torch.Tensor | None, speaker: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x [B, R, T]`, `local [B, C, T]`, `speaker [B, Gin]` -> (next residual input, skip contribution)."""
        h = self.conv(self.dropout(x))
        if self.local is not None:
            h = h + self.local(local)
        if self.glob is not None:
            h = h + self.glob(speaker).unsqueeze(-1)
        filter_part, gate_part = h.chunk(2, dim=1)
        out = self.residual_skip(torch.tanh(filter_part) * torch.sigmoid(gate_part))
        residual, skip = out.split([self.residual_channels, out.shape[1] - self.residual_channels], dim=1)
        return (x + residual) * math.sqrt(0.5), skip


class ConditioningUpsampler(nn.Module):
    """Frame-rate features to sample rate: a frame-level conv, then nearest-neighbour stretches each smoothed by
    a learned 1-D filter along time (initialised to a moving average, which avoids checkerboard artefacts).

    Both ends are extended by repeating the first and last frames, so the edges of an utterance are upsampled
    like its interior. Zero padding there read as a loud frame (log-mel 0 is magnitude 1) and made every output
    begin and end in a click."""

    def __init__(self, in_channels: int, out_channels: int, scales: list[int], prenet_kernel_size: int) -> None:
        super().__init__()
        self.scales = list(scales)
        self.prenet = nn.Conv1d(in_channels, out_channels, prenet_kernel_size, padding=prenet_kernel_size // 2)
        self.smoothers = nn.ModuleList()
        for scale in self.scales:
            smoother = nn.Conv2d(1, 1, (1, 2 * scale + 1), padding=(0, scale), bias=False)
            nn.init.constant_(smoother.weight, 1.0 / (2 * scale + 1))
            self.smoothers.append(smoother)
        # How far, in frames, the prenet and every smoother reach past an edge: the repeated frames cover it all.
        rate, reach = 1, prenet_kernel_size // 2
        smoother_reach = 0.0
        for scale in self.scales:
            rate *= scale
            smoother_reach += scale / rate
        self.edge_frames = reach + math.ceil(smoother_reach)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, C_in, frames]` -> `[B, C_out, frames * prod(scales)]`."""
        return self.upsample_with(frames, self.stretch_and_smooth)

    def stretch_and_smooth(self, x: torch.Tensor) -> torch.Tensor:
        """The stages after the prenet: `[B, C, n]` -> `[B, C, n * prod(scales)]`."""
        x = x.unsqueeze(1)
        for scale, smoother in zip(self.scales, self.smoothers, strict=True):
            x = smoother(x.repeat_interleave(scale, dim=-1))
        return x.squeeze(1)

    def upsample_with(self, frames: torch.Tensor, stages: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Repeat the edge frames, prenet, `stages` (this module's or an equivalent), and crop the repeats off
        again: the one place the edges are handled, for every implementation of the stages."""
        edge = self.edge_frames
        x = stages(self.prenet(F.pad(frames, (edge, edge), mode="replicate")))
        crop = edge * math.prod(self.scales)
        return x[..., crop:-crop]


class ConditionedModel(nn.Module):
    """What teacher and student share about conditioning: an `upsampler` and an optional `speaker_embedding`,
    set by the subclass (a mixin, so the weights keep their names)."""

    upsampler: ConditioningUpsampler
    speaker_embedding: nn.Embedding | None

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-rate conditioning `[B, frames, C]` to sample-rate `[B, C', frames * hop]`."""
        return self.upsampler(frames.transpose(1, 2))

    def speaker_vector(self, speaker_ids: torch.Tensor | None) -> torch.Tensor | None:
        if self.speaker_embedding is None:
            return None
        if speaker_ids is None:
            raise ValueError("this model is multi-speaker: a speaker id per utterance is required")
        return self.speaker_embedding(speaker_ids)
