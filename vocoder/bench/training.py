"""Training throughput of a config's teacher: samples per second through forward, backward and an AdamW step.

Random segments of the config's training shape (batch, context + loss frames, margins) stand in for data: the
speed of a step does not depend on the values. Each figure is the median of `repeats` timed runs of `steps` steps.
"""

from __future__ import annotations

import statistics
import time

import torch

from vocoder.bench import timing
from vocoder.config import Config
from vocoder.features.lpc import excitation_targets, frame_lpc, predict_signal
from vocoder.losses.teacher import masked_cross_entropy
from vocoder.models.wavenet import WaveNet
from vocoder.train.data import Batch
from vocoder.train.distributed import autocast_dtype


def bench_training(config: Config, device_name: str, steps: int = 5, repeats: int = 3) -> dict[str, object]:
    device = torch.device(device_name)
    torch.manual_seed(0)
    model = WaveNet(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.learning_rate)
    hop = config.features.hop_length
    margin = config.model.prenet_kernel_size // 2 + 1
    frames = -(-model.receptive_field // hop) + config.train.segment_frames
    batch_size = config.train.batch_size
    shape = (batch_size, frames * hop)
    lpc = config.model.lpc_order > 0  # then the signal's ids are the past and the prediction's a second input
    batch = Batch(
        frames=torch.randn(batch_size, frames + 2 * margin, config.features.dim, device=device),
        targets=torch.randint(0, config.audio.classes, shape, device=device),
        mask=torch.ones(shape, device=device),
        speaker_ids=torch.zeros(batch_size, dtype=torch.long, device=device) if config.speakers else None,
        signal=torch.randint(0, config.audio.classes, shape, device=device) if lpc else None,
        prediction=torch.randint(0, config.audio.classes, shape, device=device) if lpc else None,
    )
    dtype = autocast_dtype(device, config.train.amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = masked_cross_entropy(model, batch, margin * hop)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocator, kernels
    run = (lambda: [step() for _ in range(steps)], steps * batch.targets.numel())
    rates = timing.timed_rates({"train": run}, repeats, device)
    report: dict[str, object] = {
        "config": config.name,
        **timing.rate_summary(rates),
        "batch_size": batch_size,
        "segment_samples": frames * hop,
        "params": model.parameter_count(),
        "device": str(device),
        "device_name": timing.device_name(device),
        "amp": config.train.amp if dtype is not None else "none",
        "threads": torch.get_num_threads(),
        "steps": steps,
        "repeats": repeats,
    }
    if lpc:
        report["lpc_targets_ms_per_batch"] = _lpc_targets_ms(config, batch, margin, repeats)
    return report


def _lpc_targets_ms(config: Config, batch: Batch, margin: int, repeats: int) -> float:
    """Median milliseconds to build one batch's LPC targets on the CPU, as the data pipeline does before each step
    (predictor from the mel, teacher-forced prediction, excitation classes): the cost LPC adds outside the model."""
    frames = batch.frames[:, margin:-margin].cpu()
    audio = torch.rand(batch.targets.shape) - 0.5
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predicted = predict_signal(frame_lpc(frames, config), audio, config.features.hop_length)
        excitation_targets(audio, predicted, config.audio.mu)
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 2)
