"""The reference generator: at every step, rerun the whole network over the last receptive-field window.

O(receptive field x layers) work per sample, so slow, but obviously right given a correct parallel forward; the
fast generators are tested against it.
"""

from __future__ import annotations

import torch

from vocoder.audio import mu_law_decode, mu_law_encode
from vocoder.features.lpc import predict
from vocoder.generate.result import (
    PROGRESS_EVERY,
    GenerationResult,
    ProgressCallback,
    checked_lpc,
    checked_temperatures,
)
from vocoder.generate.sampling import Sampling, StepTemperatures
from vocoder.models.conditioning import Predictors
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
    prime: torch.Tensor | None = None,
    lpc: torch.Tensor | Predictors | None = None,
    temperatures: StepTemperatures | None = None,
) -> GenerationResult:
    """`local [B, C, P + T]` upsampled conditioning; `uniforms [B, T]` the draws (see `Sampling.uniforms`).

    `prime [B, P]`: class ids of samples that precede the generated ones (P = 0 when absent); with P at least the
    receptive field, every step runs on a full window, which is how the benchmark times the steady state.
    `lpc [B, frames, order]`: an LPC model's predictor coefficients over all P + T samples (`model.lpc(frames)`,
    or `model.predictors(frames)`, read whole):
    each step predicts p_t from the signal's last `order` samples, draws the excitation, and keeps p_t plus it
    (a prime's samples enter that history as their classes' centres).
    `temperatures`: a voicing-tied sampling's per-step temperatures over all P + T samples."""
    batch, _, total = local.shape
    primed = 0 if prime is None else prime.shape[1]
    window = model.receptive_field
    mu, hop, order = model.config.audio.mu, model.config.features.hop_length, model.lpc_order
    predictors = checked_lpc(model.lpc_order, model.config.features.hop_length, lpc, batch, total)
    coefficients = None if predictors is None else predictors.whole().to(local.device)
    temperatures = checked_temperatures(temperatures, batch, total)
    step_temperatures = None if temperatures is None else temperatures.whole()
    inputs = torch.full((batch, total + 1), model.start_id, dtype=torch.long, device=local.device)
    # The signal after `order` zeros (the silence before it), and the class ids of each step's prediction.
    signal = torch.zeros(batch, order + total, device=local.device)
    predictions = torch.full((batch, total), model.start_id, dtype=torch.long, device=local.device)
    if prime is not None:
        inputs[:, 1 : primed + 1] = prime
        signal[:, order : order + primed] = mu_law_decode(prime, mu)
    steps = total - primed
    waveform = torch.zeros(batch, steps, device=local.device)
    logits_log = torch.zeros(batch, steps, model.classes, device=local.device) if record_logits else None
    for step in range(steps):
        t = primed + step
        first = max(0, t + 1 - window)
        temperature = None if step_temperatures is None else step_temperatures[:, t]
        if coefficients is None:
            logits = model(inputs[:, first : t + 1], local[:, :, first : t + 1], speaker_ids)[:, :, -1]
            ids, values = sampling.choose(logits, uniforms[:, step], mu, temperature)
        else:
            prediction = predict(coefficients[:, t // hop], signal[:, t : t + order].flip(-1))
            predictions[:, t] = mu_law_encode(prediction, mu)
            window_predictions = predictions[:, first : t + 1]
            logits = model(inputs[:, first : t + 1], local[:, :, first : t + 1], speaker_ids, window_predictions)
            logits = logits[:, :, -1]
            values = (prediction + sampling.choose(logits, uniforms[:, step], mu, temperature)[1]).clamp(-1.0, 1.0)
            ids = mu_law_encode(values, mu)
            signal[:, order + t] = values
        inputs[:, t + 1] = ids
        waveform[:, step] = values
        if logits_log is not None:
            logits_log[:, step] = logits
        if progress is not None and (step + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None and steps % PROGRESS_EVERY:
        progress(steps % PROGRESS_EVERY)
    return GenerationResult(waveform=waveform.float(), ids=inputs[:, primed + 1 :], logits=logits_log)
