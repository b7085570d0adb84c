"""Process-group setup for `torchrun`: one process per device, rank 0 logs and checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vocoder.vocabulary import AmpDtype

AUTOCAST_DTYPES: dict[AmpDtype, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, amp: AmpDtype) -> torch.dtype | None:
    """The dtype that training autocasts to on `device` (`train.amp`), or None for fp32: CPU always trains in fp32."""
    return AUTOCAST_DTYPES[amp] if device.type == "cuda" else None


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def from_environment(device_name: str | None) -> DistributedContext:
        """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; initialise NCCL on CUDA, gloo on CPU."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        wanted = device_name or ("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(f"cuda:{local_rank}" if wanted == "cuda" else "cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return DistributedContext(rank, world_size, device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a scalar over all processes (for logging)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], device=self.device, dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
