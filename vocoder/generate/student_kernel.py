"""Parallel WaveNet student synthesis on CPU with a fused C++ forward (csrc/student_forward.cpp), built on first use.

The PyTorch forward of the student is memory-bound: its layers are narrow (16-32 channels), so each of their ~60
convolutions and the gate ops stream the whole utterance's activations through memory. The fused forward runs every
flow and layer over tiles of 256 samples that stay in cache, with the teacher kernel's vectorised gate (absolute
error < 1e-6), and splits an utterance into parts over torch's threads (each part recomputes the receptive field in
front of it, so its outputs are exactly the sequential ones). Both forwards run over an utterance in overlapping
chunks (`TorchStudent.stream`), each chunk's conditioning upsampled when it is reached, so memory does not grow with
the utterance.

Same function as `StudentWaveNet.generate` in float32 (max abs waveform error below 1e-6, tested < 1e-4). Where the
kernel cannot be built or cannot run (CUDA model or tensors, non-float32), `student_generator` (generate/backends.py)
and `generate` fall back to the PyTorch forward and log why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from vocoder.generate.result import ProgressCallback, checked_temperatures, checked_uniforms
from vocoder.generate.sampling import StepTemperatures, Uniforms
from vocoder.models.conditioning import Conditioning, as_conditioning
from vocoder.models.student import StudentWaveNet, scaled_noise
from vocoder.native import KernelUnavailable, load_extension, weights_problem

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "student_forward.cpp"


CHUNK_RECEPTIVE_FIELDS = 32
"""A full chunk of synthesis is at least this many receptive fields long, so the context recomputed in front of it
costs at most 1/32, and at least CHUNK_MIN_SAMPLES, so a short receptive field does not make the calls' fixed costs
dominate."""
CHUNK_MIN_SAMPLES = 1 << 15
CHUNK_CONDITIONING_BYTES = 16 << 20
"""A full chunk is as long as this much upsampled conditioning allows (262,144 samples of the bundled student's 16
channels at batch 1; its upsampling holds about four times that while it runs): each chunk costs a fixed ~30
PyTorch ops and a start of the forward's threads, several milliseconds each on a loaded machine, which made
32,768-sample chunks 2-3x slower than one pass; at this size a 100-s utterance is 7 chunks and memory stays bounded."""
FIRST_CHUNK_SAMPLES = 2048
"""A stream's first chunk; each next one is twice the last, up to a full chunk: a stream starts after a short chunk,
and only the first few chunks pay the context at a higher rate. A whole synthesis starts with a full chunk."""


class TorchStudent:
    """The student's own PyTorch forward (the reference, and the fallback), run over an utterance in chunks."""

    name = "torch"

    def __init__(self, model: StudentWaveNet) -> None:
        self.model = model
        self.min_chunk_samples = max(CHUNK_MIN_SAMPLES, CHUNK_RECEPTIVE_FIELDS * model.receptive_field)
        self.chunk_bytes = CHUNK_CONDITIONING_BYTES

    def full_chunk(self, local: torch.Tensor | Conditioning) -> int:
        """Samples in a full chunk of this batch: as many as `chunk_bytes` of its conditioning hold, at least
        `min_chunk_samples`."""
        batch, channels, _ = local.shape
        per_sample = batch * channels * torch.finfo(local.dtype).bits // 8
        return max(self.min_chunk_samples, self.chunk_bytes // per_sample)

    def one_pass(
        self,
        local: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor,
        temperature: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """A waveform `[B, T]` in [-1, 1] from `local [B, C', T]` and `uniforms [B, T]` in one forward pass, the
        noise scaled by `temperature` (a number or `[B, T]`)."""
        return self.model.generate(local, speaker_ids, uniforms, temperature)

    def stream(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor | Uniforms,
        first_chunk: int = FIRST_CHUNK_SAMPLES,
        temperature: float = 1.0,
        temperatures: StepTemperatures | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """`one_pass` over the whole utterance as consecutive chunks `(start, [B, n])`, `first_chunk` samples first
        and each next twice the last up to a full chunk, with the memory of one chunk whatever the length. Each
        chunk is computed from its conditioning and noise and the receptive field's in front of it (a sample
        depends on nothing earlier), so it holds the whole pass's samples: bitwise with the fused forward however
        the chunks are cut (a stream and a whole synthesis agree bitwise), to float rounding with PyTorch's (its
        convolutions round by length). Each chunk's conditioning is upsampled and its noise drawn when it is
        reached. The noise is scaled by `temperature`, or per sample by a voicing-tied sampling's `temperatures`."""
        local = as_conditioning(local)
        uniforms = checked_uniforms(uniforms, local.shape[0], local.shape[-1])
        temperatures = checked_temperatures(temperatures, local.shape[0], local.shape[-1])
        steps, context = local.shape[-1], self.model.receptive_field - 1
        full = self.full_chunk(local)
        start, size = 0, min(first_chunk, full)
        while start < steps:
            stop = min(steps, start + size)
            first = max(0, start - context)
            block = local.block(first, stop).contiguous()  # a strided block sends convolutions down a slow path
            scale = temperature if temperatures is None else temperatures.block(first, stop)
            waveform = self.one_pass(block, speaker_ids, uniforms.block(first, stop), scale)
            yield start, waveform[:, start - first :]
            start, size = stop, min(2 * size, full)

    def generate(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor | Uniforms,
        progress: ProgressCallback | None = None,
        temperature: float = 1.0,
        temperatures: StepTemperatures | None = None,
    ) -> torch.Tensor:
        """The whole waveform `[B, T]`, synthesized in full chunks (`stream`: no short first chunk, nobody is
        listening before the end); `progress` hears of each chunk."""
        batch, _, steps = local.shape
        waveform = torch.empty(batch, steps, device=local.device, dtype=local.dtype)
        chunks = self.stream(local, speaker_ids, uniforms, self.full_chunk(local), temperature, temperatures)
        for start, chunk in chunks:
            waveform[:, start : start + chunk.shape[1]] = chunk
            if progress is not None:
                progress(chunk.shape[1])
        return waveform


class KernelStudent(TorchStudent):
    """A student's weights packed for the fused CPU forward. Same interface as `TorchStudent`; `generate` is
    reentrant and releases the GIL while it computes."""

    name = "kernel"

    def __init__(self, model: StudentWaveNet) -> None:
        self.weights = w = model.export_weights()
        reason = weights_problem(w.tensors)
        if reason is not None:
            raise KernelUnavailable(reason)
        extension = load_extension(SOURCE)
        super().__init__(model)
        layers = [flow.layers for flow in w.flows]
        self.conv_bias = torch.cat([stack.conv_bias for stack in layers])
        # [layers, 2H, Gin] ([out, in], as the C++ side reads every matrix below)
        self.speaker_weight = (
            None
            if w.speaker_embedding is None
            else torch.cat([stack.speaker for stack in layers]).transpose(1, 2).contiguous()
        )
        weights: list[torch.Tensor] = []
        for flow in w.flows:
            weights += [flow.input_taps.T, flow.input_bias, flow.head.T, flow.head_bias]
            stack = flow.layers
            for taps, local, residual_skip, bias in zip(
                stack.conv_taps, stack.local, stack.residual_skip, stack.residual_skip_bias, strict=True
            ):
                weights += [torch.cat([taps.T, local.T], 1), residual_skip.T, bias]
        self._forward = extension.Student(
            [t.contiguous() for t in weights],
            [w.residual_channels, w.gate_channels // 2, w.skip_channels, w.local_channels, w.kernel_size],
            [len(flow.layers.conv_taps) for flow in w.flows],
            [dilation for stack in layers for dilation in stack.dilations],
            [flow.skip_scale for flow in w.flows],
            w.log_scale_min,
        )

    def _gate_bias(self, speaker_ids: torch.Tensor | None, batch: int) -> torch.Tensor:
        """`[B, layers, 2H]`: each layer's conv bias plus its speaker projection, constant over the utterance."""
        bias = self.conv_bias.expand(batch, -1, -1)
        if self.speaker_weight is not None:
            speaker = self.weights.speaker_vector(speaker_ids)
            bias = bias + torch.einsum("lgs,bs->blg", self.speaker_weight, speaker)
        return bias.contiguous()

    def one_pass(
        self,
        local: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor,
        temperature: float | torch.Tensor = 1.0,
        parts: int = 0,
    ) -> torch.Tensor:
        """As `TorchStudent.one_pass`; `parts` splits each utterance into that many parts (0: one per thread)."""
        if local.device.type != "cpu" or local.dtype != torch.float32:
            log.warning("fused student forward: %s %s input; using the PyTorch forward", local.device, local.dtype)
            return super().one_pass(local, speaker_ids, uniforms, temperature)
        z = scaled_noise(uniforms.to(local.dtype), temperature).contiguous()
        out = torch.empty_like(z)
        self._forward.run(z, local.contiguous(), self._gate_bias(speaker_ids, z.shape[0]), out, parts)
        return out
