"""What a generator returns, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from vocoder.generate.sampling import Sampling, StepTemperatures, Uniforms, as_uniforms
from vocoder.models.conditioning import Conditioning, Predictors, as_conditioning, as_predictors
from vocoder.models.step_weights import StepWeights

ProgressCallback = Callable[[int], None]
"""Called with the number of steps (samples per utterance) completed since the previous call."""

PROGRESS_EVERY = 256


@torch.inference_mode()
def _in_inference_mode(blocks: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """`blocks` under inference mode while they run, entered and left at each resume in the resuming thread. A `with`
    around `yield`s would leave the mode on in the consumer's thread between blocks, and a stream closed elsewhere
    (the garbage collector closes an abandoned one in whatever thread it runs) would restore this thread's modes
    there: grad re-enabled inside another thread's `no_grad`."""
    yield from blocks


@dataclass
class GenerationResult:
    """An LPC model's `waveform` is the signal (prediction plus decoded excitation, clipped to [-1, 1]) and its
    `ids` are the signal's class ids, what it reads back as its past; `logits` are over the excitation."""

    waveform: torch.Tensor  # [B, T] float32 in [-1, 1]
    ids: torch.Tensor  # [B, T] int64 class ids fed back as inputs
    logits: torch.Tensor | None = None  # [B, T, classes] when recorded (tests, diagnostics)


def checked_uniforms(uniforms: torch.Tensor | Uniforms, batch: int, steps: int) -> Uniforms:
    """`uniforms` as `Uniforms`, checked: one draw per (utterance, step) of the conditioning."""
    uniforms = as_uniforms(uniforms)
    if uniforms.shape != (batch, steps):
        expected = f"[{batch}, {steps}] draws (one per utterance and step)"
        raise ValueError(f"uniforms: expected {expected}, found {list(uniforms.shape)}")
    return uniforms


def checked_temperatures(temperatures: StepTemperatures | None, batch: int, steps: int) -> StepTemperatures | None:
    """A voicing-tied sampling's per-step temperatures (`Sampling.step_temperatures`), checked: one row per
    utterance, covering every step of the conditioning."""
    if temperatures is not None and (temperatures.shape[0] != batch or temperatures.shape[1] < steps):
        expected = f"[{batch}, >= {steps}] (one per utterance and step)"
        raise ValueError(f"temperatures: expected {expected}, found {list(temperatures.shape)}")
    return temperatures


def checked_lpc(
    order: int, hop: int, lpc: torch.Tensor | Predictors | None, batch: int, steps: int
) -> Predictors | None:
    """A generator's predictor coefficients `[B, frames, lpc_order]` (`model.predictors(frames)`, or a tensor,
    `model.lpc(frames)`) as `Predictors`, checked: a model of LPC `order` (frames of `hop` samples) needs them for
    every step, any other model must not be given them."""
    if not order:
        if lpc is not None:
            raise ValueError("LPC coefficients given for a model without linear prediction (model.lpc_order is 0)")
        return None
    if lpc is None:
        raise ValueError(f"the model predicts an LPC excitation (lpc_order {order}): pass lpc=model.lpc(frames)")
    predictors = as_predictors(lpc, hop)
    frames = -(-steps // hop)
    batch_found, frames_found, order_found = predictors.shape
    if predictors.hop != hop or batch_found != batch or frames_found < frames or order_found != order:
        expected = f"[{batch}, >= {frames}, {order}] coefficients of frames of {hop} samples"
        raise ValueError(f"lpc: expected {expected}, found {list(predictors.shape)} of frames of {predictors.hop}")
    return predictors


class BlockGenerator:
    """A generator that fills a preallocated result block by block (`allocate` + `stream`); `generate` runs it to
    the end. Fast WaveNet in PyTorch and the fused CPU kernel share this interface, so the API swaps them freely.
    `lpc`: an LPC model's predictor coefficients (`model.predictors(frames)`, read a block at a time, or a tensor),
    and `temperatures`: a voicing-tied sampling's per-step temperatures, checked here for every generator."""

    weights: StepWeights
    """The model's export (`WaveNet.export_weights`): all a generator reads of it."""

    def allocate(self, local: torch.Tensor | Conditioning, record_logits: bool = False) -> GenerationResult:
        raise NotImplementedError

    def stream(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: torch.Tensor | Uniforms,
        result: GenerationResult,
        chunk_samples: int | None = None,
        lpc: torch.Tensor | Predictors | None = None,
        temperatures: StepTemperatures | None = None,
    ) -> Iterator[tuple[int, int]]:
        """Generate into `result` block by block (at most `chunk_samples` per block), yielding each block's
        `[start, stop)` as soon as it is done. A `Conditioning`, `Uniforms` and `Predictors` are read a block at a
        time."""
        local = as_conditioning(local)
        uniforms = checked_uniforms(uniforms, local.shape[0], local.shape[-1])
        coefficients = checked_lpc(
            self.weights.lpc_order, self.weights.hop_length, lpc, local.shape[0], local.shape[-1]
        )
        temperatures = checked_temperatures(temperatures, local.shape[0], local.shape[-1])
        yield from _in_inference_mode(
            self._stream(local, speaker_ids, sampling, uniforms, result, chunk_samples, coefficients, temperatures)
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
        raise NotImplementedError

    def generate(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: torch.Tensor | Uniforms,
        record_logits: bool = False,
        progress: ProgressCallback | None = None,
        lpc: torch.Tensor | Predictors | None = None,
        temperatures: StepTemperatures | None = None,
    ) -> GenerationResult:
        """`local [B, C, T]` upsampled conditioning (or a `Conditioning` that upsamples each block when it is
        reached); `uniforms [B, T]` the draws (`Sampling.draws`: each block drawn when it is reached)."""
        result = self.allocate(local, record_logits)
        for start, stop in self.stream(
            local, speaker_ids, sampling, uniforms, result, lpc=lpc, temperatures=temperatures
        ):
            if progress is not None:
                progress(stop - start)
        return result
