"""Fast-WaveNet generation: queue caching (Paine et al., 2016).

Every layer keeps a ring buffer of its recent inputs, just long enough for its dilation, so one step costs
O(layers) small matrix products instead of a pass over the receptive field. The conditioning projections of all
layers (local features and speaker) are computed in blocks of samples, one matrix product per block, from each block's
upsampled conditioning when generation reaches it (and the block's uniform draws and an LPC model's predictor
coefficients are computed then);
the weights are prepacked once per model into the matrices a single step needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from vocoder.audio import mu_law_encode
from vocoder.features.lpc import predict
from vocoder.generate.result import BlockGenerator, GenerationResult
from vocoder.generate.sampling import Sampling, StepTemperatures, Uniforms
from vocoder.models.conditioning import Conditioning, Predictors
from vocoder.models.wavenet import WaveNet

BLOCK_ELEMENTS = 1 << 21
"""Upper bound on the floats of one block of precomputed conditioning (B x samples x layers x gate channels)."""


@dataclass
class _RingConv:
    """A causal conv's one-step form: taps of a ring buffer times a prepacked `[kernel * in, out]` matrix."""

    weight: torch.Tensor
    kernel_size: int
    dilation: int

    @property
    def length(self) -> int:
        return (self.kernel_size - 1) * self.dilation + 1

    def tap_table(self, device: torch.device) -> torch.Tensor:
        """Row p: buffer positions of the taps, oldest first, when the newest input was written at p."""
        positions = torch.arange(self.length).unsqueeze(1)
        offsets = torch.arange(self.kernel_size - 1, -1, -1) * self.dilation
        return ((positions - offsets) % self.length).to(device)


def newest_first(order: int, device: torch.device) -> torch.Tensor:
    """`[order, order]`: row r lists the slots of a ring of the signal's last `order` samples (sample t in slot
    t % order) newest first, when sample t with t % order = r is the next to be written."""
    return ((torch.arange(order)[:, None] - 1 - torch.arange(order)) % order).to(device)


class FastWaveNet(BlockGenerator):
    """A WaveNet's weights (its `export_weights`) arranged for one-step generation. Build once per model;
    `generate` is reentrant."""

    def __init__(self, model: WaveNet) -> None:
        self.weights = weights = model.export_weights()
        layers = weights.layers
        self.mu = weights.mu
        self.residual_channels = weights.residual_channels
        self.gate_channels = weights.gate_channels
        self.embedding = weights.embedding
        self.prediction_embedding = weights.prediction_embedding
        self.input_conv = _RingConv(weights.input_taps, weights.input_kernel_size, 1)
        self.input_bias = weights.input_bias
        self.convs = [
            _RingConv(taps, kernel, dilation)
            for taps, kernel, dilation in zip(layers.conv_taps, layers.kernel_sizes, layers.dilations, strict=True)
        ]
        # Conv biases, and local / speaker projections of every layer side by side: [C or Gin, layers * gate].
        self.conv_bias = layers.conv_bias
        self.local_weight = torch.cat(list(layers.local), 1)
        self.speaker_weight = None if layers.speaker is None else torch.cat(list(layers.speaker), 1)
        self.residual_skip = list(zip(layers.residual_skip, layers.residual_skip_bias, strict=True))
        self.head = [
            (weights.head_hidden, weights.head_hidden_bias),
            (weights.head_logits, weights.head_logits_bias),
        ]
        self.skip_scale = weights.skip_scale

    def layer_bias(self, speaker_ids: torch.Tensor | None, batch: int) -> torch.Tensor:
        """`[B, layers, gate]`: conv bias plus each layer's speaker projection, constant over the utterance."""
        bias = self.conv_bias.unsqueeze(0).expand(batch, -1, -1)
        if self.speaker_weight is None:
            return bias
        speaker = self.weights.speaker_vector(speaker_ids)
        return bias + (speaker @ self.speaker_weight).view(batch, len(self.convs), self.gate_channels)

    def block_conditioning(self, local: torch.Tensor, layer_bias: torch.Tensor) -> torch.Tensor:
        """`[B, n, layers, gate]`: every layer's conditioning input for a block `local [B, C, n]`, the local
        projections of all layers as one matrix product plus `layer_bias`."""
        batch, _, steps = local.shape
        projected = local.transpose(1, 2) @ self.local_weight
        return projected.view(batch, steps, len(self.convs), self.gate_channels) + layer_bias[:, None]

    @staticmethod
    def _push(ring: _RingConv, buffer: torch.Tensor, table: torch.Tensor, x: torch.Tensor, t: int) -> torch.Tensor:
        """Write `x [B, in]` as the newest input and return the stacked taps `[B, kernel * in]`."""
        position = t % ring.length
        buffer[:, position] = x
        return buffer.index_select(1, table[position]).flatten(1)

    def allocate(self, local: torch.Tensor | Conditioning, record_logits: bool = False) -> GenerationResult:
        """An empty result for generating from `local [B, C, T]`."""
        batch, _, steps = local.shape
        return GenerationResult(
            waveform=torch.empty(batch, steps, device=local.device),
            ids=torch.empty(batch, steps, dtype=torch.long, device=local.device),
            logits=torch.empty(batch, steps, self.weights.classes, device=local.device) if record_logits else None,
        )

    def _stream(
        self,
        local: Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: Uniforms,
        result: GenerationResult,
        chunk_samples: int | None,
        lpc: Predictors | None,
        temperatures: StepTemperatures | None,
    ) -> Iterator[tuple[int, int]]:
        batch, _, steps = local.shape
        device, dtype = local.device, local.dtype
        layers, gate = len(self.convs), self.gate_channels
        residual = self.residual_channels
        rings = [self.input_conv, *self.convs]
        buffers = [torch.zeros(batch, ring.length, residual, device=device, dtype=dtype) for ring in rings]
        tables = [ring.tap_table(device) for ring in rings]
        layer_bias = self.layer_bias(speaker_ids, batch)
        half = math.sqrt(0.5)

        previous = torch.full((batch,), self.weights.start_id, dtype=torch.long, device=device)
        # LPC: a ring of the signal's last `order` samples, read newest first for each step's prediction.
        order, hop = self.weights.lpc_order, self.weights.hop_length
        if lpc is not None:
            history = torch.zeros(batch, order, device=device)
            slots = newest_first(order, device)
        block = max(1, BLOCK_ELEMENTS // (batch * layers * gate))
        if chunk_samples is not None:
            block = min(block, chunk_samples)
        for start in range(0, steps, block):
            stop = min(steps, start + block)
            conditioning = self.block_conditioning(local.block(start, stop), layer_bias)
            draws = uniforms.block(start, stop).to(device)
            step_temperatures = None if temperatures is None else temperatures.block(start, stop)
            if lpc is not None:  # the coefficients of the block's frames, the first frame start // hop
                coefficients = lpc.block(start, stop).to(device)
            for t in range(start, stop):
                embedded = self.embedding[previous]
                if lpc is not None:
                    frame = t // hop - start // hop
                    prediction = predict(coefficients[:, frame], history.index_select(1, slots[t % order]))
                    embedded = embedded + self.prediction_embedding[mu_law_encode(prediction, self.mu)]
                taps = self._push(self.input_conv, buffers[0], tables[0], embedded, t)
                x = torch.addmm(self.input_bias, taps, self.input_conv.weight)
                skips = torch.zeros(batch, self.weights.skip_channels, device=device, dtype=dtype)
                step_conditioning = conditioning[:, t - start]
                for index, ring in enumerate(self.convs):
                    taps = self._push(ring, buffers[index + 1], tables[index + 1], x, t)
                    h = torch.addmm(step_conditioning[:, index], taps, ring.weight)
                    filter_part, gate_part = h.chunk(2, dim=1)
                    weight, bias = self.residual_skip[index]
                    out = torch.addmm(bias, torch.tanh(filter_part) * torch.sigmoid(gate_part), weight)
                    x = (x + out[:, :residual]) * half
                    skips += out[:, residual:]
                hidden = torch.relu(torch.addmm(self.head[0][1], torch.relu(skips * self.skip_scale), self.head[0][0]))
                logits = torch.addmm(self.head[1][1], hidden, self.head[1][0])
                temperature = None if step_temperatures is None else step_temperatures[:, t - start]
                previous, values = sampling.choose(logits, draws[:, t - start], self.mu, temperature)
                if lpc is not None:  # the excitation drawn, the signal kept and fed back
                    values = (prediction + values).clamp(-1.0, 1.0)
                    previous = mu_law_encode(values, self.mu)
                    history[:, t % order] = values
                result.ids[:, t] = previous
                result.waveform[:, t] = values
                if result.logits is not None:
                    result.logits[:, t] = logits
            yield start, stop
