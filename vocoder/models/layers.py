"""WaveNet building blocks: causal dilated convolution, the gated residual layer, the conditioning upsampler."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from vocoder.models.conditioning import UpsampledConditioning


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


class Smoother(nn.Module):
    """An s-fold nearest-neighbour stretch smoothed by a learned `(2s + 1)`-tap filter (zero padding), computed
    polyphase over the unstretched signal: output `m * s + r` is `sum_q P[r, q] * x[m - 1 + q]`, where `P[r, q]`
    sums the taps j with `(r + j) // s == q` (zero padding of the stretch is zero padding of x). The same function
    as stretching and convolving, without the stretched intermediate. `ConditioningUpsampler` composes the stages
    into one filter (`phase_matrix`) rather than running them one by one."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        # The name and shape of the Conv2d filter this replaces, so model files load unchanged; a moving average
        # to start with (no checkerboard artefacts), after the random draws Conv2d made, so seeded models stay.
        self.weight = nn.Parameter(torch.empty(1, 1, 1, 2 * scale + 1))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.constant_(self.weight, 1.0 / (2 * scale + 1))
        # [3, 2s + 1, s]: 1 where tap j of phase r reads x[m - 1 + q]. Made on the CPU whatever the default device:
        # these ops on the meta device (build_model's shape check) import torch.fx's symbolic shapes, sympy and
        # triton, 0.15 GB of resident memory for the life of the process.
        taps, phases = torch.arange(2 * scale + 1, device="cpu"), torch.arange(scale, device="cpu")
        selection = F.one_hot((phases[None, :] + taps[:, None]) // scale, 3).permute(2, 0, 1).float()
        self.register_buffer("selection", selection, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, n]` -> `[B, C, n * scale]`, in the dtype of `x` (the weights cast to it)."""
        p = (self.weight.reshape(1, -1, 1).to(x.dtype) * self.selection.to(x.dtype)).sum(1)  # [3, s]
        padded = F.pad(x, (1, 1)).unsqueeze(-1)
        out = padded[..., :-2, :] * p[0] + padded[..., 1:-1, :] * p[1] + padded[..., 2:, :] * p[2]
        return out.flatten(-2)


class ConditioningUpsampler(nn.Module):
    """Frame-rate features to sample rate: a frame-level conv (the prenet), then nearest-neighbour stretches each
    smoothed by a learned 1-D filter along time (`Smoother`).

    The stretch-and-smooth stages are linear and shift-invariant by whole frames, so together they are one
    polyphase filter: output phase r of frame m is `sum_q H[q, r] * x[m + q]` over the prenet's frames within
    `stage_reach` of m (`phase_matrix`, from the stages' response to one frame). Upsampling is then one product of
    `2 * stage_reach + 1` taps per output, written once: no stage's intermediate, no copies.

    Both ends are extended by repeating the first and last frames, so the edges of an utterance are upsampled
    like its interior. Zero padding there read as a loud frame (log-mel 0 is magnitude 1) and made every output
    begin and end in a click. `conditioning` upsamples a tile of frames at a time (`UpsampledConditioning`)."""

    def __init__(self, in_channels: int, out_channels: int, scales: list[int], prenet_kernel_size: int) -> None:
        super().__init__()
        self.scales = list(scales)
        self.hop = math.prod(self.scales)
        # No padding: every caller gives the prenet the frames it reads past the ends (the edge frames repeated).
        self.prenet = nn.Conv1d(in_channels, out_channels, prenet_kernel_size)
        self.smoothers = nn.ModuleList(Smoother(scale) for scale in self.scales)
        # How far, in frames, the smoothers reach past the frame of an output: each reads one sample either side at
        # its input rate. With the prenet's reach, that many repeated frames cover every edge.
        rate, reach = 1, 0.0
        for scale in self.scales:
            reach += 1 / rate
            rate *= scale
        self.stage_reach = math.ceil(reach)
        self.edge_frames = prenet_kernel_size // 2 + self.stage_reach

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, C_in, frames]` -> `[B, C_out, frames * prod(scales)]` in one pass (training, the ONNX export);
        within float rounding of `conditioning(frames).whole()`, which generation reads."""
        edge = self.edge_frames
        return self.polyphase(self.prenet(F.pad(frames, (edge, edge), mode="replicate")), self.phase_matrix())

    def conditioning(self, frames: torch.Tensor) -> UpsampledConditioning:
        """`[B, C_in, frames]` upsampled tile by tile as a generator reads it."""
        return UpsampledConditioning(self, frames)

    def stretch_and_smooth(self, x: torch.Tensor) -> torch.Tensor:
        """The stages after the prenet one by one: `[B, C, n]` -> `[B, C, n * prod(scales)]`."""
        for smoother in self.smoothers:
            x = smoother(x)
        return x

    def phase_matrix(self) -> torch.Tensor:
        """`H [2 * stage_reach + 1, hop]`: the stages as one polyphase filter, row `q + stage_reach` the weights of
        frame `m + q` in the outputs of frame m; computed in float64 from one frame through the stages (with
        `stage_reach` frames of zeros beyond its reach either side, so no stage's padding cuts the response)."""
        reach = self.stage_reach
        weight = self.prenet.weight
        impulse = torch.zeros(1, 1, 4 * reach + 1, dtype=torch.float64, device=weight.device)
        impulse[..., 2 * reach] = 1.0
        # Frame m's outputs weigh the impulse, at frame 2 * reach, as H[2 * reach - m]: rows m = reach..3 * reach.
        response = self.stretch_and_smooth(impulse).reshape(4 * reach + 1, self.hop)[reach : 3 * reach + 1]
        return response.flip(0).to(weight.dtype)

    def polyphase(self, prenet: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        """`prenet [B, C, n + 2 * stage_reach]` (frames of context either side) and `phases` (`phase_matrix`) ->
        `[B, C, n * hop]`: each output `2 * stage_reach + 1` products summed, one matrix product for all."""
        taps = phases.shape[0]
        frames = prenet.shape[-1] - taps + 1
        stacked = torch.stack([prenet[..., q : q + frames] for q in range(taps)], -1)  # [B, C, n, taps]
        return (stacked @ phases).flatten(-2)


def speaker_vectors(table: torch.Tensor | None, speaker_ids: torch.Tensor | None) -> torch.Tensor | None:
    """The rows of a speaker embedding `table` for `speaker_ids`; None for a single-speaker model."""
    if table is None:
        return None
    if speaker_ids is None:
        raise ValueError("this model is multi-speaker: a speaker id per utterance is required")
    return F.embedding(speaker_ids, table)


class ConditionedModel(nn.Module):
    """What teacher and student share about conditioning: an `upsampler` and an optional `speaker_embedding`,
    set by the subclass (a mixin, so the weights keep their names)."""

    upsampler: ConditioningUpsampler
    speaker_embedding: nn.Embedding | None

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-rate conditioning `[B, frames, C]` to sample-rate `[B, C', frames * hop]` in one pass (training)."""
        return self.upsampler(frames.transpose(1, 2))

    def conditioning(self, frames: torch.Tensor) -> UpsampledConditioning:
        """`upsample`, computed a tile of frames at a time as a generator reads it (within float rounding of it)."""
        return self.upsampler.conditioning(frames.transpose(1, 2))

    def speaker_vector(self, speaker_ids: torch.Tensor | None) -> torch.Tensor | None:
        return speaker_vectors(None if self.speaker_embedding is None else self.speaker_embedding.weight, speaker_ids)
