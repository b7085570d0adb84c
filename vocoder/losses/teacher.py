"""The teacher WaveNet's training loss: cross-entropy of its mu-law categorical against the next sample's class.

The trainer and `vocoder bench training` both take it from here, so the benchmark times the loss that trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from vocoder.models.wavenet import shift_right

if TYPE_CHECKING:
    from vocoder.train.data import Batch


def masked_cross_entropy(model: torch.nn.Module, batch: Batch, margin_samples: int) -> torch.Tensor:
    """Mean cross-entropy over the samples where `batch.mask` is 1."""
    core = model.module if isinstance(model, DistributedDataParallel) else model
    local = core.upsample(batch.frames)[:, :, margin_samples:-margin_samples]
    logits = model(shift_right(batch.past, core.start_id), local, batch.speaker_ids, batch.prediction)
    losses = F.cross_entropy(logits.float(), batch.targets, reduction="none")
    return (losses * batch.mask).sum() / batch.mask.sum().clamp(min=1)
