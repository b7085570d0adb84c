"""What a model hands its fast generators: its weights as named matrices in the layout one step uses.

The generators (the PyTorch loop, the CUDA-graph loop, the C++ kernels' packers) read these structures and never
the modules, so a new conditioning input or output transform changes a model, its export and the kernels, not
every caller. Matrices are `[in, out]` (a step computes `x @ matrix`), taps are stacked oldest first, and every
tensor is detached from autograd; the exports are frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vocoder.models.layers import GatedResidualLayer, speaker_vectors


@dataclass(frozen=True)
class GatedLayerWeights:
    """A stack of gated residual layers (`GatedResidualLayer`): per layer, a dilated conv over a ring of inputs plus
    the conditioning projections, the tanh x sigmoid gate over `[filter | gate]` halves, and one `[residual | skip]`
    output matrix."""

    conv_taps: tuple[torch.Tensor, ...]
    """Per layer `[kernel * residual, gate]`: the dilated conv's taps, oldest first."""
    conv_bias: torch.Tensor
    """`[layers, gate]`."""
    kernel_sizes: tuple[int, ...]
    dilations: tuple[int, ...]
    local: torch.Tensor
    """`[layers, local_channels, gate]`: each layer's projection of the upsampled conditioning."""
    speaker: torch.Tensor | None
    """`[layers, speaker_channels, gate]`: each layer's projection of the speaker vector; None for one speaker."""
    residual_skip: torch.Tensor
    """`[layers, gate // 2, residual + skip]`: the gate's output to the residual, then the skip channels."""
    residual_skip_bias: torch.Tensor
    """`[layers, residual + skip]`."""

    @classmethod
    def of(cls, layers: Sequence[GatedResidualLayer]) -> GatedLayerWeights:
        """A `ValueError` for layers without local conditioning (a config always has some): nothing generates
        without it."""
        if any(layer.local is None for layer in layers):
            raise ValueError("a layer has no local conditioning: the generators need it in every layer")
        with torch.no_grad():
            return cls(
                conv_taps=tuple(layer.conv.taps_matrix().detach().contiguous() for layer in layers),
                conv_bias=torch.stack([layer.conv.bias.detach() for layer in layers]),
                kernel_sizes=tuple(layer.conv.kernel_size[0] for layer in layers),
                dilations=tuple(layer.dilation for layer in layers),
                local=torch.stack([layer.local.weight.detach()[:, :, 0].T for layer in layers]),
                speaker=(
                    torch.stack([layer.glob.weight.detach().T for layer in layers])
                    if all(layer.glob is not None for layer in layers)
                    else None
                ),
                residual_skip=torch.stack([layer.residual_skip.weight.detach()[:, :, 0].T for layer in layers]),
                residual_skip_bias=torch.stack([layer.residual_skip.bias.detach() for layer in layers]),
            )

    @property
    def tensors(self) -> list[torch.Tensor]:
        found = [*self.conv_taps, self.conv_bias, self.local, self.residual_skip, self.residual_skip_bias]
        return found + ([] if self.speaker is None else [self.speaker])


class _SpeakerTable:
    """An export's speaker embedding `[speakers, speaker_channels]` (None for one speaker) and its lookup."""

    speaker_embedding: torch.Tensor | None

    def speaker_vector(self, speaker_ids: torch.Tensor | None) -> torch.Tensor | None:
        """`[B, speaker_channels]` for `speaker_ids`, None for one speaker."""
        return speaker_vectors(self.speaker_embedding, speaker_ids)


@dataclass(frozen=True)
class StepWeights(_SpeakerTable):
    """The teacher WaveNet (`WaveNet.export_weights`) for one-step generation: embedding of the previous sample's
    class id -> causal input conv -> gated layers -> scaled skip sum -> ReLU, 1x1, ReLU, 1x1 -> logits over the
    mu-law classes, sampled and fed back (the first input is `start_id`)."""

    embedding: torch.Tensor
    """`[classes, residual]`."""
    input_taps: torch.Tensor
    """`[input_kernel * residual, residual]`: the input conv's taps, oldest first."""
    input_bias: torch.Tensor
    """`[residual]`."""
    input_kernel_size: int
    layers: GatedLayerWeights
    skip_scale: float
    """The skip sum is multiplied by this before the head."""
    head_hidden: torch.Tensor
    """`[skip, skip]`."""
    head_hidden_bias: torch.Tensor
    head_logits: torch.Tensor
    """`[skip, classes]`."""
    head_logits_bias: torch.Tensor
    speaker_embedding: torch.Tensor | None
    """`[speakers, speaker_channels]`, the rows `layers.speaker` projects; None for one speaker."""
    residual_channels: int
    gate_channels: int
    skip_channels: int
    local_channels: int
    classes: int
    mu: int
    """The mu-law companding constant: class ids <-> samples."""
    start_id: int
    """The class id fed in before the first sample (silence)."""
    prediction_embedding: torch.Tensor | None
    """`[classes, residual]`, added to `embedding`'s row: the linear prediction's class id (`lpc_order > 0`)."""
    lpc_order: int
    """0, or how many past signal samples the linear prediction reads (the network then models the excitation)."""
    hop_length: int
    """Samples per frame: frame f's predictor coefficients apply to samples [f * hop, (f + 1) * hop)."""

    @property
    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the export (what a kernel checks for device and dtype)."""
        found = [self.embedding, self.input_taps, self.input_bias, *self.layers.tensors, self.head_hidden]
        found += [self.head_hidden_bias, self.head_logits, self.head_logits_bias]
        found += [] if self.prediction_embedding is None else [self.prediction_embedding]
        return found + ([] if self.speaker_embedding is None else [self.speaker_embedding])


@dataclass(frozen=True)
class FlowWeights:
    """One IAF flow of the student: causal input conv (1 -> residual) over the flow's input shifted by one sample,
    gated layers, scaled skip sum -> ReLU -> 1x1 to (location, log-scale)."""

    input_taps: torch.Tensor
    """`[kernel, residual]`: the input conv's taps, oldest first."""
    input_bias: torch.Tensor
    layers: GatedLayerWeights
    skip_scale: float
    head: torch.Tensor
    """`[skip, 2]`: to the location and the log-scale."""
    head_bias: torch.Tensor

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [self.input_taps, self.input_bias, *self.layers.tensors, self.head, self.head_bias]


@dataclass(frozen=True)
class StudentWeights(_SpeakerTable):
    """The Parallel WaveNet student (`StudentWaveNet.export_weights`) for its fused forward: the flows in order and
    the speaker embedding they share."""

    flows: tuple[FlowWeights, ...]
    speaker_embedding: torch.Tensor | None
    """`[speakers, speaker_channels]`; None for one speaker."""
    residual_channels: int
    gate_channels: int
    skip_channels: int
    local_channels: int
    kernel_size: int
    log_scale_min: float
    """Each flow's log-scale is clamped from below to this."""

    @property
    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the export (what a kernel checks for device and dtype)."""
        found = [t for flow in self.flows for t in flow.tensors]
        return found + ([] if self.speaker_embedding is None else [self.speaker_embedding])
