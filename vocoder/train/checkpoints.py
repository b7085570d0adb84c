"""Training checkpoints: written atomically, rotated, and found again after a crash.

A checkpoint is a dict of tensors and plain values (model, EMA, optimizer, scheduler, step, data position, RNG
states, config) saved with `torch.save` and read back with `weights_only=True`, which refuses arbitrary objects.
It is written to a hidden temporary file, flushed to disk, then renamed: a crash mid-write leaves the previous
checkpoints untouched, and a damaged file is skipped on resume with a warning.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from vocoder.errors import VocoderError

log = logging.getLogger(__name__)
NAME = re.compile(r"^step_(\d{8})\.pt$")


def atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


class CheckpointStore:
    """`RUN_DIR/checkpoints/step_XXXXXXXX.pt` (the last `keep_last`) and `best.pt`."""

    def __init__(self, run_dir: Path, keep_last: int) -> None:
        self.directory = run_dir / "checkpoints"
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def saved_steps(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(match[1]) for p in self.directory.iterdir() if (match := NAME.match(p.name)))

    def save(self, payload: dict[str, Any], step: int, is_best: bool) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        atomic_torch_save(payload, path)
        if is_best:
            atomic_torch_save(payload, self.best_path)
        for old in self.saved_steps()[: -self.keep_last]:
            self.path_for(old).unlink(missing_ok=True)
        return path

    def load_latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads; damaged ones (a crash mid-write on another filesystem, a full disk)
        are reported and skipped. Loaded to the CPU: RNG states must stay CPU byte tensors, and `load_state_dict`
        moves weights and optimizer state to wherever the model is."""
        for step in reversed(self.saved_steps()):
            path = self.path_for(step)
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # any unreadable file is skipped the same way
                log.warning("skipping damaged checkpoint %s: %s", path, error)
        return None


def load_training_state(path: Path) -> dict[str, Any]:
    """A training state saved elsewhere (a bundled model's `training/state.pt`, another run's checkpoint), for
    `--resume-from`: loaded like a checkpoint, with `weights_only=True`; an unreadable file is an error, not a skip."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise VocoderError(f"{path}: no such training state") from None
    except Exception as error:
        raise VocoderError(f"{path}: not a readable training state ({type(error).__name__}: {error})") from None
