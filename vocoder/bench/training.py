"""Training throughput of a config's teacher: samples per second through forward, backward and an AdamW step.

Random segments of the config's training shape (batch, context + loss frames, margins) stand in for data: the
speed of a step does not depend on the values. Each figure is the median of `repeats` timed runs of `steps` steps.
"""

from __future__ import annotations

import torch

from vocoder.bench import timing
from vocoder.config import Config
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
    batch = Batch(
        frames=torch.randn(batch_size, frames + 2 * margin, config.features.dim, device=device),
        targets=torch.randint(0, config.audio.classes, (batch_size, frames * hop), device=device),
        mask=torch.ones(batch_size, frames * hop, device=device),
        speaker_ids=torch.zeros(batch_size, dtype=torch.long, device=device) if config.speakers else None,
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
    return {
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
