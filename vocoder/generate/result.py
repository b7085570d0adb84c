"""What a generator returns, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from vocoder.generate.sampling import Sampling
from vocoder.models.conditioning import Conditioning, as_conditioning

ProgressCallback = Callable[[int], None]
"""Called with the number of steps (samples per utterance) completed since the previous call."""

PROGRESS_EVERY = 256


@dataclass
class GenerationResult:
    waveform: torch.Tensor  # [B, T] float32 in [-1, 1]
    ids: torch.Tensor  # [B, T] int64 class ids fed back as inputs
    logits: torch.Tensor | None = None  # [B, T, classes] when recorded (tests, diagnostics)


class BlockGenerator:
    """A generator that fills a preallocated result block by block (`allocate` + `stream`); `generate` runs it to
    the end. Fast WaveNet in PyTorch and the fused CPU kernel share this interface, so the API swaps them freely."""

    def allocate(self, local: torch.Tensor | Conditioning, record_logits: bool = False) -> GenerationResult:
        raise NotImplementedError

    def stream(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: torch.Tensor,
        result: GenerationResult,
        chunk_samples: int | None = None,
    ) -> Iterator[tuple[int, int]]:
        """Generate into `result` block by block (at most `chunk_samples` per block), yielding each block's
        `[start, stop)` as soon as it is done. A `Conditioning` is read a block at a time."""
        with torch.inference_mode():
            yield from self._stream(as_conditioning(local), speaker_ids, sampling, uniforms, result, chunk_samples)

    def _stream(
        self,
        local: Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: torch.Tensor,
        result: GenerationResult,
        chunk_samples: int | None,
    ) -> Iterator[tuple[int, int]]:
        raise NotImplementedError

    def generate(
        self,
        local: torch.Tensor | Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: torch.Tensor,
        record_logits: bool = False,
        progress: ProgressCallback | None = None,
    ) -> GenerationResult:
        """`local [B, C, T]` upsampled conditioning (or a `Conditioning` that upsamples each block when it is
        reached); `uniforms [B, T]` the draws (see `Sampling.uniforms`)."""
        result = self.allocate(local, record_logits)
        for start, stop in self.stream(local, speaker_ids, sampling, uniforms, result):
            if progress is not None:
                progress(stop - start)
        return result
