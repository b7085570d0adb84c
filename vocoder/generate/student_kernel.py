"""Parallel WaveNet student synthesis on CPU with a fused C++ forward (csrc/student_forward.cpp), built on first use.

The PyTorch forward of the student is memory-bound: its layers are narrow (16-32 channels), so each of their ~60
convolutions and the gate ops stream the whole utterance's activations through memory. The fused forward runs every
flow and layer over tiles of 256 samples that stay in cache, with the teacher kernel's vectorised gate (absolute
error < 1e-6), and splits an utterance into parts over torch's threads (each part recomputes the receptive field in
front of it, so its outputs are exactly the sequential ones). The conditioning upsampler is computed polyphase: each
nearest-neighbour stretch by s followed by its (2s + 1)-tap smoother is one 3-tap convolution with s outputs per input
frame, the same function without the stretched intermediate.

Same function as `StudentWaveNet.generate` in float32 (max abs waveform error below 1e-6, tested < 1e-4). Where the
kernel cannot be built or cannot run (CUDA model or tensors, non-float32), `student_generator` and `generate` fall
back to the PyTorch forward and log why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.nn import functional as F

from vocoder.models.student import StudentWaveNet, logistic_noise
from vocoder.native import KernelUnavailable, load_extension, weights_problem

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "student_forward.cpp"


def polyphase_filters(smoother: torch.Tensor, scale: int) -> torch.Tensor:
    """A `(2s + 1)`-tap smoother of an s-fold nearest-neighbour stretch as `[s, 1, 3]` filters over the unstretched
    signal: output `m * s + r` is `sum_q P[r, q] * y[m - 1 + q]`, P[r, q] summing the taps j with
    `(r + j) // s == q` (zero padding of the stretched signal is zero padding of y)."""
    taps = smoother.reshape(-1)
    phases = torch.zeros(scale, 3, dtype=taps.dtype)
    for r in range(scale):
        for j in range(2 * scale + 1):
            phases[r, (r + j) // scale] += taps[j]
    return phases[:, None, :]


class TorchStudent:
    """The student's own PyTorch upsampler and forward (the reference, and the fallback)."""

    name = "torch"

    def __init__(self, model: StudentWaveNet) -> None:
        self.model = model

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-rate conditioning `[B, frames, C]` to sample-rate `[B, C', frames * hop]`."""
        return self.model.upsample(frames)

    def generate(self, local: torch.Tensor, speaker_ids: torch.Tensor | None, uniforms: torch.Tensor) -> torch.Tensor:
        """A waveform `[B, T]` in [-1, 1] from `local [B, C', T]` and `uniforms [B, T]`."""
        return self.model.generate(local, speaker_ids, uniforms)


class KernelStudent(TorchStudent):
    """A student's weights packed for the fused CPU forward. Same interface as `TorchStudent`; `generate` is
    reentrant and releases the GIL while it computes."""

    name = "kernel"

    def __init__(self, model: StudentWaveNet) -> None:
        reason = weights_problem(model)
        if reason is not None:
            raise KernelUnavailable(reason)
        extension = load_extension(SOURCE)
        super().__init__(model)
        s = model.config.student
        assert s is not None  # a StudentWaveNet has one
        half = s.gate_channels // 2
        layers = [layer for flow in model.flows for layer in flow.layers]
        with torch.no_grad():
            self.phases = [
                polyphase_filters(smoother.weight, scale)
                for scale, smoother in zip(model.upsampler.scales, model.upsampler.smoothers, strict=True)
            ]
            self.conv_bias = torch.stack([layer.conv.bias for layer in layers])
            self.speaker_weight = (
                torch.stack([layer.glob.weight for layer in layers]) if model.speaker_embedding is not None else None
            )
            weights: list[torch.Tensor] = []
            for flow in model.flows:
                head = flow.head[1]
                weights += [flow.input_conv.weight[:, 0, :], flow.input_conv.bias, head.weight[:, :, 0], head.bias]
                for layer in flow.layers:
                    taps = layer.conv.weight.permute(0, 2, 1).flatten(1)  # [2H, kernel * R], oldest tap first
                    weights += [
                        torch.cat([taps, layer.local.weight[:, :, 0]], 1),
                        layer.residual_skip.weight[:, :, 0],
                        layer.residual_skip.bias,
                    ]
        self._forward = extension.Student(
            [w.detach().contiguous() for w in weights],
            [s.residual_channels, half, s.skip_channels, model.local_channels, s.kernel_size],
            list(s.flows),
            [layer.dilation for layer in layers],
            [flow.skip_scale for flow in model.flows],
            s.log_scale_min,
        )

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """The model's upsampler, each stretch-and-smooth stage computed polyphase (same function, no stretched
        intermediate, about 20x less work on the last stage)."""
        return self.model.upsampler.upsample_with(frames.transpose(1, 2), self._stretch_and_smooth)

    def _stretch_and_smooth(self, x: torch.Tensor) -> torch.Tensor:
        for phases in self.phases:
            batch, channels, length = x.shape
            scale = phases.shape[0]
            x = F.conv1d(x.reshape(batch * channels, 1, length), phases.to(x), padding=1)
            x = x.transpose(1, 2).reshape(batch, channels, length * scale)
        return x

    def _gate_bias(self, speaker_ids: torch.Tensor | None, batch: int) -> torch.Tensor:
        """`[B, layers, 2H]`: each layer's conv bias plus its speaker projection, constant over the utterance."""
        bias = self.conv_bias.expand(batch, -1, -1)
        if self.speaker_weight is not None:
            speaker = self.model.speaker_vector(speaker_ids)
            bias = bias + torch.einsum("lgs,bs->blg", self.speaker_weight, speaker)
        return bias.contiguous()

    def generate(
        self,
        local: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor,
        parts: int = 0,
    ) -> torch.Tensor:
        """As `TorchStudent.generate`; `parts` splits each utterance into that many parts (0: one per thread)."""
        if local.device.type != "cpu" or local.dtype != torch.float32:
            log.warning("fused student forward: %s %s input; using the PyTorch forward", local.device, local.dtype)
            return super().generate(local, speaker_ids, uniforms)
        z = logistic_noise(uniforms.to(local.dtype)).contiguous()
        out = torch.empty_like(z)
        self._forward.run(z, local.contiguous(), self._gate_bias(speaker_ids, z.shape[0]), out, parts)
        return out


def student_generator(model: StudentWaveNet) -> KernelStudent | TorchStudent:
    """The best available student synthesis for `model`: on a GPU the PyTorch forward (one pass of wide kernels
    is what a GPU is good at), on CPU the fused forward where it can run, else PyTorch's with a warning."""
    if next(model.parameters()).device.type == "cuda":
        return TorchStudent(model)
    try:
        return KernelStudent(model)
    except KernelUnavailable as reason:
        log.warning("fused student forward unavailable (%s); using the PyTorch forward", reason)
        return TorchStudent(model)
