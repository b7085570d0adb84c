"""The teacher: a conditional WaveNet over mu-law class ids.

Convention: the model reads `inputs[t] = x[t-1]` (the previous sample's class id; a silence id at t = 0) and the
conditioning at t, and `logits[:, :, t]` is its distribution over x[t]. `shift_right` builds the inputs from a
target sequence for teacher-forced training; generation feeds its own samples back.

With linear prediction (`model.lpc_order > 0`, `vocoder.features.lpc`) the inputs stay the signal's class ids, the
model also reads `prediction[t]`, the class id of the LPC prediction p_t of sample t from the samples before it,
and `logits[:, :, t]` is the distribution of the excitation `s_t - p_t`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vocoder.audio import mu_law_encode
from vocoder.config import Config
from vocoder.features.lpc import frame_lpc
from vocoder.models.conditioning import FramePredictors
from vocoder.models.layers import CausalConv1d, ConditionedModel, ConditioningUpsampler, GatedResidualLayer
from vocoder.models.step_weights import GatedLayerWeights, StepWeights


def silence_id(mu: int) -> int:
    """The class id of a zero sample: the input before the first sample."""
    return int(mu_law_encode(torch.zeros(()), mu))


def shift_right(targets: torch.Tensor, start_id: int) -> torch.Tensor:
    """Inputs for teacher forcing: `[start, x0, x1, ..., x(T-2)]` for targets `[x0, ..., x(T-1)]`."""
    start = torch.full_like(targets[..., :1], start_id)
    return torch.cat([start, targets[..., :-1]], dim=-1)


PREDICTION_WEIGHT = "prediction_embedding.weight"
"""The one weight an LPC model has beyond a model without linear prediction of the same shape."""


class WaveNet(ConditionedModel):
    """Embedding -> causal input conv -> gated residual layers (dilated, conditioned) -> skip sum -> output head."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        m = config.model
        self.classes = config.audio.classes
        self.local_channels = m.conditioning_channels or config.features.dim
        self.global_channels = m.speaker_embedding_dim if config.speakers else 0

        self.embedding = nn.Embedding(self.classes, m.residual_channels)  # == one-hot followed by a 1x1 conv
        # The prediction's one-hot through its own 1x1 conv, added: == both one-hots concatenated into one conv.
        self.prediction_embedding = nn.Embedding(self.classes, m.residual_channels) if m.lpc_order else None
        self.input_conv = CausalConv1d(m.residual_channels, m.residual_channels, m.input_kernel_size)
        self.upsampler = ConditioningUpsampler(
            config.features.dim, self.local_channels, m.upsample_scales, m.prenet_kernel_size
        )
        self.speaker_embedding = nn.Embedding(len(config.speakers), self.global_channels) if config.speakers else None
        self.layers = nn.ModuleList(
            GatedResidualLayer(
                m.residual_channels,
                m.gate_channels,
                m.skip_channels,
                m.kernel_size,
                dilation,
                self.local_channels,
                self.global_channels,
                m.dropout,
            )
            for dilation in m.dilations
        )
        self.skip_scale = math.sqrt(1.0 / len(self.layers))
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(m.skip_channels, m.skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(m.skip_channels, self.classes, 1),
        )

    @property
    def receptive_field(self) -> int:
        """How many input samples (including the current one) one output depends on."""
        m = self.config.model
        return (m.input_kernel_size - 1) + sum((m.kernel_size - 1) * d for d in m.dilations) + 1

    @property
    def receptive_field_ms(self) -> float:
        return 1000.0 * self.receptive_field / self.config.audio.sample_rate

    @property
    def start_id(self) -> int:
        return silence_id(self.config.audio.mu)

    @property
    def lpc_order(self) -> int:
        return self.config.model.lpc_order

    def lpc(self, frames: torch.Tensor) -> torch.Tensor | None:
        """Frame-rate conditioning `[B, frames, C]` -> the predictor coefficients `[B, frames, lpc_order]` that
        the generators take with it; None for a model without linear prediction."""
        return frame_lpc(frames, self.config) if self.lpc_order else None

    def predictors(self, frames: torch.Tensor) -> FramePredictors | None:
        """`lpc`, computed a tile of frames at a time as a generator reads it (bitwise `whole()` however it is
        read); None for a model without linear prediction."""
        return FramePredictors(frames, self.config) if self.lpc_order else None

    def forward(
        self,
        inputs: torch.Tensor,
        local: torch.Tensor | None,
        speaker_ids: torch.Tensor | None = None,
        prediction: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`inputs [B, T]` class ids, `local [B, C, T]` upsampled conditioning, `prediction [B, T]` the LPC
        prediction's class ids (an LPC model only) -> logits `[B, classes, T]`."""
        embedded = self.embedding(inputs)
        if self.prediction_embedding is not None:
            if prediction is None:
                raise ValueError("an LPC model (model.lpc_order > 0) reads the prediction's class ids too")
            embedded = embedded + self.prediction_embedding(prediction)
        elif prediction is not None:
            raise ValueError("this model has no linear prediction (model.lpc_order is 0); pass no prediction")
        return self.forward_embedded(embedded, local, speaker_ids)

    def forward_embedded(
        self, embedded: torch.Tensor, local: torch.Tensor | None, speaker_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`forward` from the inputs' embeddings `[B, T, residual_channels]`: distillation passes relaxed ones."""
        x = self.input_conv(embedded.transpose(1, 2))
        speaker = self.speaker_vector(speaker_ids)
        skips = torch.zeros((), dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, skip = layer(x, local, speaker)
            skips = skips + skip
        return self.head(skips * self.skip_scale)

    def export_weights(self) -> StepWeights:
        """The weights in one step's layout, for the fast generators (which read nothing else of the model).
        The upsampler is not in it: generators read the conditioning it makes (`conditioning`)."""
        m = self.config.model
        first, second = self.head[1], self.head[3]
        with torch.no_grad():
            return StepWeights(
                embedding=self.embedding.weight.detach(),
                input_taps=self.input_conv.taps_matrix().detach().contiguous(),
                input_bias=self.input_conv.bias.detach(),
                input_kernel_size=m.input_kernel_size,
                layers=GatedLayerWeights.of(list(self.layers)),
                skip_scale=self.skip_scale,
                head_hidden=first.weight.detach()[:, :, 0].T.contiguous(),
                head_hidden_bias=first.bias.detach(),
                head_logits=second.weight.detach()[:, :, 0].T.contiguous(),
                head_logits_bias=second.bias.detach(),
                speaker_embedding=None if self.speaker_embedding is None else self.speaker_embedding.weight.detach(),
                residual_channels=m.residual_channels,
                gate_channels=m.gate_channels,
                skip_channels=m.skip_channels,
                local_channels=self.local_channels,
                classes=self.classes,
                mu=self.config.audio.mu,
                start_id=self.start_id,
                prediction_embedding=None
                if self.prediction_embedding is None
                else self.prediction_embedding.weight.detach(),
                lpc_order=self.lpc_order,
                hop_length=self.config.features.hop_length,
            )

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
