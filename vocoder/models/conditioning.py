"""Sample-rate conditioning read a block of samples at a time.

Upsampled conditioning is the largest tensor of a synthesis: `[B, C, T]` at the sample rate (80 channels of float32
are 5 MB per second of audio). Generators read it through `Conditioning.block`, so an upsampler can compute each
block when it is reached (`UpsampledConditioning`, prenet included) and neither memory nor the work before the
first block grows with the utterance; a tensor that is already upsampled (tests) is wrapped by `as_conditioning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

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


TILE_BYTES = 4 << 20
"""Upsampled conditioning per batch row in one tile: the prenet and the polyphase filter run over one tile's frames
(and their context) at a time. 65 frames of the teacher's 80 channels at hop 200 (13,000 samples), 327 of the
student's 16: the first block waits for one small tile (under 1 ms), and memory is a tile whatever the channels.
The student's 100-s synthesis spends 0.02 s of 1.2 s in its tiles, with 64-frame tiles as with these."""


class UpsampledConditioning(Conditioning):
    """A batch of frame-rate features, upsampled a tile of frames (`TILE_BYTES` a row) at a time on a fixed grid: a
    tile reads exactly its frames and `edge_frames` either side (the first and last frames repeated past the ends),
    runs the prenet and the polyphase filter (`ConditioningUpsampler.polyphase`) over them, and every tile has the
    same shapes, so it is computed the same whichever block asks for it. A block is cut from the tiles it overlaps
    (the last one kept for the next block): blocks are bitwise slices of `whole()` however a generator cuts them,
    and nothing past a block's last tile is read. For generation only (no gradients)."""

    def __init__(self, upsampler: ConditioningUpsampler, frames: torch.Tensor) -> None:
        """`frames [B, C_in, n]`."""
        self.upsampler, self.frames = upsampler, frames
        batch, _, count = frames.shape
        channels = upsampler.prenet.out_channels
        self.shape = (batch, channels, count * upsampler.hop)
        self.device, self.dtype = frames.device, frames.dtype
        self.tile_frames = max(1, TILE_BYTES // (channels * upsampler.hop * frames.element_size()))
        self.tile_samples = self.tile_frames * upsampler.hop
        with torch.no_grad():
            self.phases = upsampler.phase_matrix()
        edge = upsampler.edge_frames
        self.reads = torch.arange(-edge, self.tile_frames + edge, device=frames.device)  # tile 0's frames, context too
        self.last: tuple[int, torch.Tensor] | None = None

    def tile(self, index: int) -> torch.Tensor:
        """`[B, C, tile_samples]`: the samples of frames `[index * tile_frames, (index + 1) * tile_frames)` (past
        the last frame, the last frame repeated)."""
        if self.last is not None and self.last[0] == index:
            return self.last[1]
        up = self.upsampler
        positions = (self.reads + index * self.tile_frames).clamp_(0, self.frames.shape[-1] - 1)
        with torch.no_grad():
            tile = up.polyphase(up.prenet(self.frames.index_select(-1, positions)), self.phases)
        self.last = index, tile
        return tile

    def block(self, start: int, stop: int) -> torch.Tensor:
        size = self.tile_samples
        first, last = start // size, -(-stop // size)  # the tiles that samples [start, stop) fall in
        if last - first == 1:
            return self.tile(first)[..., start - first * size : stop - first * size]
        out = torch.empty(*self.shape[:2], stop - start, device=self.device, dtype=self.dtype)
        for index in range(first, last):
            lo, hi = max(start, index * size), min(stop, (index + 1) * size)
            out[..., lo - start : hi - start] = self.tile(index)[..., lo - index * size : hi - index * size]
        return out


def as_conditioning(local: torch.Tensor | Conditioning) -> Conditioning:
    """`local` as a `Conditioning` (a tensor is wrapped as it is)."""
    return local if isinstance(local, Conditioning) else TensorConditioning(local)
