"""The Parallel WaveNet student: inverse autoregressive flows that turn logistic noise into a waveform in one pass.

Each flow is a small conditional WaveNet that reads the previous flow's output shifted right by one sample and
emits a location `mu_t` and log-scale `log_s_t`; the flow maps `x_t -> x_t * s_t + mu_t`. Because `mu_t`, `s_t`
depend only on the flow's input before t, and that input depends only on `z_<=t`, the whole stack is causal in the
noise `z` and every sample is, given `z_<t`, one logistic: `x_t = z_t * s_tot_t + mu_tot_t` with
`s_tot = prod_i s_i` and `mu_tot = sum_i mu_i prod_{j>i} s_j` (van den Oord et al., 2018, eq. 6-7). The log-det of
`dx/dz` is `sum_t log s_tot_t`, which gives the student's entropy for distillation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from vocoder.config import Config, StudentConfig
from vocoder.errors import VocoderError
from vocoder.models.conditioning import Conditioning
from vocoder.models.layers import CausalConv1d, ConditionedModel, ConditioningUpsampler, GatedResidualLayer
from vocoder.models.source import SourcedConditioning, harmonic_source
from vocoder.models.step_weights import FlowWeights, GatedLayerWeights, StudentWeights

NOISE_EPS = 1e-6
"""Uniform draws are kept in [eps, 1 - eps] so the logistic noise stays finite."""


@dataclass
class StudentOutput:
    waveform: torch.Tensor  # [B, T] the sample x (not clipped to [-1, 1])
    location: torch.Tensor  # [B, T] mu_tot: the composed logistic's location given z_<t
    log_scale: torch.Tensor  # [B, T] log s_tot = sum over flows of log s: the per-sample log-det of dx/dz


def logistic_noise(uniforms: torch.Tensor) -> torch.Tensor:
    """Uniform(0, 1) draws to Logistic(0, 1) noise by the inverse CDF, so a seeded uniform stream fixes z."""
    u = uniforms.clamp(NOISE_EPS, 1 - NOISE_EPS)
    return torch.log(u) - torch.log1p(-u)


def scaled_noise(uniforms: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """`logistic_noise` times `temperature`, a number or a tensor shaped like `uniforms` (Glow's temperature: below
    1, a quieter draw than the one the student was distilled on)."""
    z = logistic_noise(uniforms)
    return z * (temperature.to(z) if isinstance(temperature, torch.Tensor) else temperature)


class Flow(nn.Module):
    """One IAF step: causal input conv over the input shifted by one, gated residual layers, a 2-channel head."""

    def __init__(self, layers: int, student: StudentConfig, local_channels: int, global_channels: int) -> None:
        super().__init__()
        s = student
        self.input_conv = CausalConv1d(1, s.residual_channels, s.kernel_size)
        self.layers = nn.ModuleList(
            GatedResidualLayer(
                s.residual_channels,
                s.gate_channels,
                s.skip_channels,
                s.kernel_size,
                dilation,
                local_channels,
                global_channels,
                0.0,
            )
            for dilation in s.dilations(layers)
        )
        self.skip_scale = math.sqrt(1.0 / layers)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(s.skip_channels, 2, 1))
        self.log_scale_min = s.log_scale_min
        # Start every flow as x -> x * s0 with s0 ** flows == initial_scale: a quiet, well-conditioned first sample.
        nn.init.zeros_(self.head[1].weight)
        nn.init.constant_(self.head[1].bias, 0.0)
        nn.init.constant_(self.head[1].bias[1], math.log(s.initial_scale) / len(s.flows))

    def start_as_identity(self) -> None:
        """Make the flow x -> x (mu = 0, log s = 0) whatever its layers hold: a flow appended to a trained student."""
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    @property
    def receptive_field(self) -> int:
        """How many earlier input samples `mu_t`, `s_t` depend on (the shift by one included)."""
        k = self.input_conv.kernel_size[0]
        return 1 + (k - 1) + sum((layer.conv.kernel_size[0] - 1) * layer.dilation for layer in self.layers)

    def export_weights(self) -> FlowWeights:
        """This flow's weights in `[in, out]` layout (see `StudentWaveNet.export_weights`)."""
        head = self.head[1]
        with torch.no_grad():
            return FlowWeights(
                input_taps=self.input_conv.taps_matrix().detach().contiguous(),
                input_bias=self.input_conv.bias.detach(),
                layers=GatedLayerWeights.of(list(self.layers)),
                skip_scale=self.skip_scale,
                head=head.weight.detach()[:, :, 0].T.contiguous(),
                head_bias=head.bias.detach(),
            )

    def forward(
        self, x: torch.Tensor, local: torch.Tensor | None, speaker: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`x [B, T]` -> (`mu [B, T]`, `log_s [B, T]`), each at t a function of `x_<t` only."""
        h = self.input_conv(F.pad(x[:, None, :-1], (1, 0)))
        skips = torch.zeros((), dtype=h.dtype, device=h.device)
        for layer in self.layers:
            h, skip = layer(h, local, speaker)
            skips = skips + skip
        mu, log_s = self.head(skips * self.skip_scale).unbind(1)
        return mu, log_s.clamp(min=self.log_scale_min)


class StudentWaveNet(ConditionedModel):
    """Logistic noise + conditioning -> waveform, with the composed per-sample logistic, in one forward pass.

    One conditioning upsampler is shared by all flows (it is the same function of the features for each), with the
    teacher's upsampling scales and its own width; the speaker embedding is the student's own. With
    `student.source_harmonics` the flows read `source_channels` more: the harmonic source (`with_source`).
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        if config.student is None:
            raise VocoderError(f"config {config.name!r} has no 'student' section")
        self.config = config
        student = config.student
        self.local_channels = student.conditioning_channels
        self.source_channels = student.source_harmonics + 1 if student.source_harmonics else 0
        self.global_channels = config.model.speaker_embedding_dim if config.speakers else 0
        self.upsampler = ConditioningUpsampler(
            config.features.dim, self.local_channels, config.model.upsample_scales, config.model.prenet_kernel_size
        )
        self.speaker_embedding = nn.Embedding(len(config.speakers), self.global_channels) if config.speakers else None
        self.flows = nn.ModuleList(
            Flow(layers, student, self.local_channels + self.source_channels, self.global_channels)
            for layers in student.flows
        )

    @property
    def receptive_field(self) -> int:
        """How many samples of noise one output sample depends on, its own included."""
        return 1 + sum(flow.receptive_field for flow in self.flows)

    @property
    def flow_receptive_field(self) -> int:
        """The longest history a single flow reads: the context a training segment must give each flow."""
        return max(flow.receptive_field for flow in self.flows)

    def _require_f0(self, f0: torch.Tensor | None) -> torch.Tensor:
        if f0 is None:
            raise VocoderError(
                f"student {self.config.name!r} reads a harmonic source (student.source_harmonics "
                f"{self.config.student.source_harmonics}): it needs the recording's F0"
            )
        return f0

    def source_conditioning(self, local: Conditioning, f0: torch.Tensor | None) -> Conditioning:
        """Synthesis's `with_source`: `local` read a block at a time, each block with its source (phase 0 at the
        utterance's start, carried across blocks), so chunked synthesis and streams read the whole's source."""
        if not self.source_channels:
            return local
        f0 = self._require_f0(f0)
        hop, rate = self.config.features.hop_length, self.config.audio.sample_rate
        return SourcedConditioning(local, f0, hop, rate, self.config.student.source_harmonics)

    def with_source(self, local: torch.Tensor, f0: torch.Tensor | None, phase: torch.Tensor | None) -> torch.Tensor:
        """The flows' conditioning: `local [B, C', T]` and, for a student with a harmonic source, the source of the
        frame F0 `f0 [B, T / hop]` (Hz, 0 unvoiced) starting at `phase [B]` (None: 0) -> `[B, C' + H + 1, T]`."""
        if not self.source_channels:
            return local
        f0 = self._require_f0(f0)
        hop = self.config.features.hop_length
        if f0.shape[-1] * hop != local.shape[-1]:
            raise VocoderError(f"f0: {f0.shape[-1]} frames do not cover the conditioning's {local.shape[-1]} samples")
        source = harmonic_source(f0, hop, self.config.audio.sample_rate, self.config.student.source_harmonics, phase)
        return torch.cat([local, source.to(local.dtype)], dim=1)

    def forward(
        self, z: torch.Tensor, local: torch.Tensor | None, speaker_ids: torch.Tensor | None = None
    ) -> StudentOutput:
        """`z [B, T]` logistic noise, `local [B, C', T]` the flows' conditioning (`with_source`) -> the sample and
        its logistics."""
        speaker = self.speaker_vector(speaker_ids)
        x = z
        location = torch.zeros_like(z)
        log_scale = torch.zeros_like(z)
        for flow in self.flows:
            mu, log_s = flow(x, local, speaker)
            scale = torch.exp(log_s)
            x = x * scale + mu
            location = location * scale + mu
            log_scale = log_scale + log_s
        return StudentOutput(x, location, log_scale)

    def export_weights(self) -> StudentWeights:
        """The weights as named `[in, out]` matrices, for the fused forward (which reads nothing else of the model).
        The upsampler is not in it: synthesis reads the conditioning it makes (`conditioning`)."""
        s = self.config.student
        assert s is not None  # checked in __init__
        return StudentWeights(
            flows=tuple(flow.export_weights() for flow in self.flows),
            speaker_embedding=None if self.speaker_embedding is None else self.speaker_embedding.weight.detach(),
            residual_channels=s.residual_channels,
            gate_channels=s.gate_channels,
            skip_channels=s.skip_channels,
            local_channels=self.local_channels + self.source_channels,
            kernel_size=s.kernel_size,
            log_scale_min=s.log_scale_min,
        )

    def generate(
        self,
        local: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor,
        temperature: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """A whole waveform `[B, T]` in [-1, 1] in one forward pass: `uniforms [B, T]` (seeded, as the teacher's
        generators use them) become the logistic noise z, scaled by `temperature` (a number, or `[B, T]` per
        sample: Glow's and WaveGlow's temperature, below 1 a less noisy draw than the one distilled)."""
        z = scaled_noise(uniforms.to(local.device, local.dtype), temperature)
        return self(z, local, speaker_ids).waveform.clamp(-1.0, 1.0)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
