"""Sample-rate conditioning read a block of samples at a time.

Upsampled conditioning is the largest tensor of a synthesis: `[B, C, T]` at the sample rate (80 channels of float32
are 5 MB per second of audio). Generators read it through `Conditioning.block`, so an upsampler can compute each
block when it is reached (`UpsampledConditioning`) and memory does not grow with the utterance; a tensor that is
already upsampled (tests, the naive reference) is wrapped by `as_conditioning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from vocoder.models.layers import ConditioningUpsampler


class Conditioning:
    """`[B, C, T]` conditioning at the sample rate; `shape`, `device` and `dtype` as the tensor would have them."""

    shape: tuple[int, int, int]
    device: torch.device
    dtype: torch.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        """`[B, C, stop - start]`: samples `[start, stop)`."""
        raise NotImplementedError

    def whole(self) -> torch.Tensor:
        """All `T` samples as one tensor (what the naive reference and tests read)."""
        return self.block(0, self.shape[-1])


class TensorConditioning(Conditioning):
    """Conditioning that is already upsampled."""

    def __init__(self, local: torch.Tensor) -> None:
        self.local = local
        self.shape = tuple(local.shape)  # type: ignore[assignment]
        self.device, self.dtype = local.device, local.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        return self.local[:, :, start:stop]


class UpsampledConditioning(Conditioning):
    """A batch of frame-rate features, upsampled a block at a time: the prenet runs once over the frames (frame
    rate, so small), the stretch-and-smooth stages over each block's frames with `stage_reach` frames of context
    either side. Every stage computes each output from the same inputs in the same order wherever a block starts,
    so blocks are bitwise slices of `whole()`, however a generator cuts them."""

    def __init__(self, upsampler: ConditioningUpsampler, frames: torch.Tensor) -> None:
        """`frames [B, C_in, n]`."""
        self.upsampler = upsampler
        edge = upsampler.edge_frames
        # The edge frames repeated on both sides, then the prenet: [B, C, n + 2 * edge], frame f at f + edge.
        self.prenet = upsampler.prenet(F.pad(frames, (edge, edge), mode="replicate"))
        batch, channels, _ = self.prenet.shape
        self.shape = (batch, channels, frames.shape[-1] * upsampler.hop)
        self.device, self.dtype = self.prenet.device, self.prenet.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        up = self.upsampler
        first, last = start // up.hop, -(-stop // up.hop)  # the frames that samples [start, stop) fall in
        reach, edge = up.stage_reach, up.edge_frames
        x = up.stretch_and_smooth(self.prenet[..., first + edge - reach : last + edge + reach])
        offset = reach * up.hop + start - first * up.hop
        return x[..., offset : offset + stop - start]


def as_conditioning(local: torch.Tensor | Conditioning) -> Conditioning:
    """`local` as a `Conditioning` (a tensor is wrapped as it is)."""
    return local if isinstance(local, Conditioning) else TensorConditioning(local)
