"""What a generator returns, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

ProgressCallback = Callable[[int], None]
"""Called with the number of steps (samples per utterance) completed since the previous call."""

PROGRESS_EVERY = 256


@dataclass
class GenerationResult:
    waveform: torch.Tensor  # [B, T] float32 in [-1, 1]
    ids: torch.Tensor  # [B, T] int64 class ids fed back as inputs
    logits: torch.Tensor | None = None  # [B, T, classes] when recorded (tests, diagnostics)
