"""The reference generator: at every step, rerun the whole network over the last receptive-field window.

O(receptive field x layers) work per sample, so slow, but obviously right given a correct parallel forward; the
fast generators are tested against it.
"""

from __future__ import annotations

import torch

from vocoder.generate.result import PROGRESS_EVERY, GenerationResult, ProgressCallback
from vocoder.generate.sampling import Sampling
from vocoder.models.wavenet import WaveNet


@torch.inference_mode()
def generate_naive(
    model: WaveNet,
    local: torch.Tensor,
    speaker_ids: torch.Tensor | None,
    sampling: Sampling,
    uniforms: torch.Tensor,
    record_logits: bool = False,
    progress: ProgressCallback | None = None,
) -> GenerationResult:
    """`local [B, C, T]` upsampled conditioning; `uniforms [B, T]` the draws (see `Sampling.uniforms`)."""
    batch, _, steps = local.shape
    window = model.receptive_field
    mu = model.config.audio.mu
    inputs = torch.full((batch, steps + 1), model.start_id, dtype=torch.long, device=local.device)
    waveform = torch.zeros(batch, steps, device=local.device)
    logits_log = torch.zeros(batch, steps, model.classes, device=local.device) if record_logits else None
    for t in range(steps):
        first = max(0, t + 1 - window)
        logits = model(inputs[:, first : t + 1], local[:, :, first : t + 1], speaker_ids)[:, :, -1]
        ids, values = sampling.choose(logits, uniforms[:, t], mu)
        inputs[:, t + 1] = ids
        waveform[:, t] = values
        if logits_log is not None:
            logits_log[:, t] = logits
        if progress is not None and (t + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None and steps % PROGRESS_EVERY:
        progress(steps % PROGRESS_EVERY)
    return GenerationResult(waveform=waveform.float(), ids=inputs[:, 1:], logits=logits_log)
