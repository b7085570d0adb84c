"""Conditioning read a block of samples at a time.

Upsampled conditioning is the largest tensor of a synthesis: `[B, C, T]` at the sample rate (80 channels of float32
are 5 MB per second of audio). Generators read it through `Conditioning.block`, so an upsampler can compute each
block when it is reached (`UpsampledConditioning`, prenet included) and neither memory nor the work before the
first block grows with the utterance; a tensor that is already upsampled (tests) is wrapped by `as_conditioning`.
An LPC model's predictor coefficients are read the same way (`Predictors`, `FramePredictors`): small themselves, but
computing a 100-s utterance's at once took 0.2 GB of float64 spectra and longer than the first block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from vocoder.features.lpc import frame_lpc

if TYPE_CHECKING:
    from vocoder.config import Config
    from vocoder.models.layers import ConditioningUpsampler


class Tiles:
    """A tensor computed a tile at a time on a fixed grid along dimension `dim`: tile i, positions
    `[i * size, (i + 1) * size)`, is `compute(i)` when a read first reaches it, and the last tile is kept for the
    next read. A read is cut from the tiles it overlaps, so it is bitwise a slice of the whole however reads are
    cut, and nothing past its last tile is computed."""

    def __init__(self, compute: Callable[[int], torch.Tensor], size: int, dim: int) -> None:
        self.compute, self.size, self.dim = compute, size, dim
        self.last: tuple[int, torch.Tensor] | None = None

    def tile(self, index: int) -> torch.Tensor:
        if self.last is None or self.last[0] != index:
            self.last = index, self.compute(index)
        return self.last[1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Positions `[start, stop)` along `dim`."""
        size, dim = self.size, self.dim
        first, last = start // size, -(-stop // size)  # the tiles that [start, stop) falls in
        if last - first <= 1:
            return self.tile(first).narrow(dim, start - first * size, stop - start)
        parts = []
        for index in range(first, last):
            lo, hi = max(start, index * size), min(stop, (index + 1) * size)
            parts.append(self.tile(index).narrow(dim, lo - index * size, hi - lo))
        return torch.cat(parts, dim)


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
The student's 100-s synthesis spends 0.02 s of 1.2 s in its tiles, with 64-frame tiles as with these. An LPC model's
predictor tiles (`FramePredictors`) are sized by the same bytes."""


class UpsampledConditioning(Conditioning):
    """A batch of frame-rate features, upsampled a tile of frames (`TILE_BYTES` a row) at a time on a fixed grid
    (`Tiles`): a tile reads exactly its frames and `edge_frames` either side (the first and last frames repeated
    past the ends), runs the prenet and the polyphase filter (`ConditioningUpsampler.polyphase`) over them, and
    every tile has the same shapes, so it is computed the same whichever block asks for it: blocks are bitwise
    slices of `whole()` however a generator cuts them. For generation only (no gradients)."""

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
        self.tiles = Tiles(self.tile, self.tile_samples, -1)

    def tile(self, index: int) -> torch.Tensor:
        """`[B, C, tile_samples]`: the samples of frames `[index * tile_frames, (index + 1) * tile_frames)` (past
        the last frame, the last frame repeated)."""
        up = self.upsampler
        positions = (self.reads + index * self.tile_frames).clamp_(0, self.frames.shape[-1] - 1)
        with torch.no_grad():
            return up.polyphase(up.prenet(self.frames.index_select(-1, positions)), self.phases)

    def block(self, start: int, stop: int) -> torch.Tensor:
        return self.tiles.read(start, stop)


def as_conditioning(local: torch.Tensor | Conditioning) -> Conditioning:
    """`local` as a `Conditioning` (a tensor is wrapped as it is)."""
    return local if isinstance(local, Conditioning) else TensorConditioning(local)


class Predictors:
    """`[B, frames, order]` float32: an LPC model's predictor coefficients, frame f's for samples
    `[f * hop, (f + 1) * hop)`, read a block of samples at a time as `Conditioning` is."""

    shape: tuple[int, int, int]
    hop: int

    def frames(self, first: int, last: int) -> torch.Tensor:
        """`[B, last - first, order]`: the coefficients of frames `[first, last)`."""
        raise NotImplementedError

    def block(self, start: int, stop: int) -> torch.Tensor:
        """`[B, n, order]`: the coefficients of the frames that samples `[start, stop)` fall in, the first of them
        frame `start // hop`."""
        return self.frames(start // self.hop, -(-stop // self.hop))

    def per_sample(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """`[B, stop - start, order]` on `device`: each sample's frame's coefficients (the step programs that read
        one row per sample: CUDA graphs, the Triton kernel)."""
        frames = torch.arange(start, stop, device=device) // self.hop - start // self.hop
        return self.block(start, stop).to(device).index_select(1, frames)

    def whole(self) -> torch.Tensor:
        """Every frame's coefficients as one tensor (the naive reference, tests)."""
        return self.frames(0, self.shape[1])


class TensorPredictors(Predictors):
    """Coefficients given as a `[B, frames, order]` tensor (`WaveNet.lpc`)."""

    def __init__(self, coefficients: torch.Tensor, hop: int) -> None:
        self.coefficients, self.hop = coefficients.to(torch.float32), hop
        self.shape = tuple(coefficients.shape)  # type: ignore[assignment]  # checked by the generators that read it

    def frames(self, first: int, last: int) -> torch.Tensor:
        return self.coefficients[:, first:last]


class FramePredictors(Predictors):
    """The coefficients of frame-rate conditioning `[B, n, C]` (`frame_lpc`), computed a tile of frames at a time on
    a fixed grid (`Tiles`; past the last frame, the last repeated), so every tile has the same shapes and blocks are
    bitwise slices of `whole()`. Each frame's coefficients come from its own mel frame: a tile needs no context. A
    tile's largest tensor, the autocorrelation's inverse FFT (`n_fft` float64 a frame), is `TILE_BYTES` a row: 512
    frames of the teacher (n_fft 1,024), or the utterance's frames if fewer (one tile, computed once either way).
    For generation only (no gradients)."""

    def __init__(self, conditioning: torch.Tensor, config: Config) -> None:
        self.conditioning, self.config = conditioning, config
        self.hop = config.features.hop_length
        self.shape = (conditioning.shape[0], conditioning.shape[1], config.model.lpc_order)
        budget = TILE_BYTES // (config.features.n_fft * torch.float64.itemsize)
        self.tile_frames = max(1, min(budget, conditioning.shape[1]))
        self.reads = torch.arange(self.tile_frames, device=conditioning.device)  # tile 0's frames
        self.tiles = Tiles(self.tile, self.tile_frames, 1)

    def tile(self, index: int) -> torch.Tensor:
        """`[B, tile_frames, order]`: the coefficients of frames `[index * tile_frames, (index + 1) * tile_frames)`
        (past the last frame, the last frame's)."""
        positions = (self.reads + index * self.tile_frames).clamp_(max=self.shape[1] - 1)
        with torch.no_grad():
            return frame_lpc(self.conditioning.index_select(1, positions), self.config)

    def frames(self, first: int, last: int) -> torch.Tensor:
        return self.tiles.read(first, last)


def as_predictors(coefficients: torch.Tensor | Predictors, hop: int) -> Predictors:
    """`coefficients` as `Predictors` of frames of `hop` samples (a tensor is wrapped as it is)."""
    return coefficients if isinstance(coefficients, Predictors) else TensorPredictors(coefficients, hop)
