"""A harmonic source for the student (NSF's sine source, Wang et al., 2019): deterministic periodic channels it reads
beside its conditioning, so a flow can put a voiced component into its location `mu` without building it from noise.

Per sample t: `vuv_t * sin(k * phi_t)` for k = 1..H, and `vuv_t`, where `phi_t = phase + 2 pi sum_(n<=t) f0_n / sr`
and `f0_n` is the frame's F0 (WORLD's, in Hz; 0 where unvoiced) held over the frame's `hop` samples. Harmonics at or
above Nyquist are zero. The phase runs on through unvoiced stretches unchanged (f0 = 0 adds nothing to it). The
frame F0 is the recording's: WORLD's, as a feature file's `lf0`/`vuv` (`Features.f0_hz`).

The ONNX export traces these functions into its upsampler graph (vocoder/onnx_export.py), float64 phase included,
so their constants are exact in float32 (integers, half the rate) or float64 tensors (`full_turn`): the exporter
(torch 2.14, onnxscript 0.7) writes a Python float scalar as float32 widened to float64. `hop / sr` = 0.0025 so
rounded drifted the exported phase by 5e-6 cycles in 1.25 s (1.3e-4 in a 4th harmonic, growing with length); 2 pi
so rounded cost 1e-6.
"""

from __future__ import annotations

import math

import torch

from vocoder.errors import VocoderError
from vocoder.models.conditioning import Conditioning


def frame_cycles(f0: torch.Tensor, hop: int, sample_rate: int) -> torch.Tensor:
    """`[B, F]` float64: the source's phase in cycles at the start of each frame (0 at the first), the prefix sum of
    the frames before it (F0 is held over a frame, so each adds `f0 * hop / sr`). A chunk of synthesis starts its
    source from these, so a stream's source is bitwise the whole utterance's (`SourcedConditioning`)."""
    per_frame = f0.double() * hop / sample_rate  # integers: exact constants in the ONNX graph
    return torch.cumsum(per_frame, dim=1) - per_frame


def full_turn(device: torch.device) -> torch.Tensor:
    """2 pi as a float64 tensor, not a Python float, so the ONNX graph holds all 64 bits of it (module docstring);
    PyTorch multiplies by it bitwise as by the float."""
    return torch.tensor(2 * math.pi, dtype=torch.float64, device=device)


def source_from_cycles(
    f0: torch.Tensor, cycles: torch.Tensor, hop: int, sample_rate: int, harmonics: int
) -> torch.Tensor:
    """Frame F0 `[B, F]` (Hz, 0 unvoiced) with each frame's starting phase `cycles [B, F]` (float64, in cycles) ->
    the source `[B, harmonics + 1, F * hop]`, in float32 (or `f0`'s float dtype): sample r of frame f is at
    `cycles_f + (r + 1) f0_f / sr` cycles, wrapped in float64 so long utterances stay exact. Only the phase and its
    sine and cosine are per sample; the higher harmonics follow by sin(k x) = 2 cos(x) sin((k - 1) x) - sin((k - 2) x)
    in the output dtype (a third of the time of k sines in float64), the voiced and below-Nyquist masks per frame."""
    if f0.dim() != 2 or cycles.shape != f0.shape:
        raise ValueError(f"f0 and cycles must be [batch, frames], got {tuple(f0.shape)} and {tuple(cycles.shape)}")
    dtype = f0.dtype if f0.is_floating_point() else torch.float32
    batch, frames = f0.shape
    step = f0.double() / sample_rate  # cycles per sample
    within = torch.arange(1, hop + 1, dtype=torch.float64, device=f0.device)
    angle = torch.frac(cycles[:, :, None] + within * step[:, :, None]) * full_turn(f0.device)  # [B, F, hop]
    first, twice_cos = torch.sin(angle).to(dtype), (2 * torch.cos(angle)).to(dtype)
    sines = [first, twice_cos * first]
    while len(sines) < harmonics + 1:
        sines.append(twice_cos * sines[-1] - sines[-2])
    k = torch.arange(1, harmonics + 1, dtype=torch.float64, device=f0.device)[None, :, None]
    voiced = (f0 > 0)[:, None, :]
    kept = torch.cat([voiced & (k * f0.double()[:, None, :] < sample_rate / 2), voiced], dim=1).to(dtype)
    source = torch.stack([*sines[:harmonics], torch.ones_like(first)], dim=1) * kept[:, :, :, None]
    return source.reshape(batch, harmonics + 1, frames * hop)


def harmonic_source(
    f0: torch.Tensor, hop: int, sample_rate: int, harmonics: int, phase: torch.Tensor | None = None
) -> torch.Tensor:
    """Frame F0 `[B, F]` in Hz (0: unvoiced) -> the source `[B, harmonics + 1, F * hop]`: H sines, then vuv.

    `phase [B]` (radians) starts each row's phase; None: 0. The running phase is summed in float64 and wrapped,
    so a long utterance's sines stay exact."""
    if f0.dim() != 2:
        raise ValueError(f"f0 must be [batch, frames], got shape {tuple(f0.shape)}")
    cycles = frame_cycles(f0, hop, sample_rate)
    if phase is not None:
        cycles = cycles + phase.double()[:, None] / full_turn(phase.device)
    return source_from_cycles(f0, cycles, hop, sample_rate, harmonics)


class SourcedConditioning(Conditioning):
    """A student's conditioning with its harmonic source appended, `[B, C' + H + 1, T]`, read a block at a time as
    synthesis reaches it: each block's source is computed from its own frames and their starting phases
    (`frame_cycles` of the whole F0, summed once), so blocks are bitwise slices of `whole()` however they are cut,
    and a stream's source continues its phase from chunk to chunk."""

    def __init__(self, local: Conditioning, f0: torch.Tensor, hop: int, sample_rate: int, harmonics: int) -> None:
        """`local [B, C', F * hop]`, `f0 [B, F]` in Hz."""
        batch, channels, samples = local.shape
        if f0.dim() != 2 or f0.shape[0] != batch or f0.shape[1] * hop != samples:
            raise VocoderError(
                f"f0: expected [{batch}, {samples // hop}] frame F0 for {samples} samples of conditioning, "
                f"found shape {list(f0.shape)}"
            )
        self.local, self.f0, self.hop, self.sample_rate, self.harmonics = local, f0, hop, sample_rate, harmonics
        self.cycles = frame_cycles(f0, hop, sample_rate)
        self.shape = (batch, channels + harmonics + 1, samples)
        self.device, self.dtype = local.device, local.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        first, last = start // self.hop, -(-stop // self.hop)  # the frames that [start, stop) falls in
        source = source_from_cycles(
            self.f0[:, first:last], self.cycles[:, first:last], self.hop, self.sample_rate, self.harmonics
        )
        offset = start - first * self.hop
        source = source[:, :, offset : offset + stop - start].to(self.dtype)
        return torch.cat([self.local.block(start, stop), source], dim=1)
