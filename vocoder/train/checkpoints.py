"""Training checkpoints: written atomically with a digest, rotated, and found again after a crash.

A checkpoint is a dict of tensors and plain values (model, EMA, optimizer, scheduler, step, data position, RNG
states, config) serialised with `torch.save`; the file holds those bytes and their SHA-256, and is read back with
`weights_only=True`, which refuses arbitrary objects. A flipped byte fails the digest: the checkpoint is damaged.
It is written to a hidden temporary file, flushed to disk, then renamed: a crash mid-write leaves the previous
checkpoints untouched. On resume a damaged checkpoint is reported and renamed `*.damaged` (kept, never counted
again), the newest good one is used, `best.pt` after them; with none usable the run stops rather than start over.
Exports (`model/`, `best/`) are only replaced by a model trained longer, or validated better.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from vocoder.atomic import atomic_path
from vocoder.errors import VocoderError
from vocoder.models.checkpoint import CheckpointError, read_model_header

log = logging.getLogger(__name__)
NAME = re.compile(r"^step_(\d{8})\.pt$")
FORMAT = "wavenet-service-checkpoint"
EXPORTS = ("model", "best")


class DamagedCheckpoint(VocoderError):
    """A checkpoint that cannot be trusted: unreadable, or its payload does not match its digest."""


def atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """`payload` serialised, with the SHA-256 of its bytes beside it, written atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = bytearray(buffer.getbuffer())
    digest = hashlib.sha256(data).hexdigest()
    atomic_torch_save({"format": FORMAT, "sha256": digest, "payload": torch.frombuffer(data, dtype=torch.uint8)}, path)


def _summary(error: Exception) -> str:
    """torch's load errors run to paragraphs: their first line, for a one-line warning."""
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:160]}" if str(error).strip() else repr(error)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a checkpoint, verified against its digest; `DamagedCheckpoint` naming the file otherwise.
    Loaded to the CPU: RNG states must stay CPU byte tensors, and `load_state_dict` moves the rest."""
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is damaged the same way
        raise DamagedCheckpoint(f"{path}: unreadable ({_summary(error)})") from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        if isinstance(outer, dict) and "step" in outer:  # written before checkpoints carried a digest
            log.warning("checkpoint %s carries no digest (an older format): loaded unverified", path)
            return outer
        raise DamagedCheckpoint(f"{path}: field 'format': expected {FORMAT!r}, found something else")
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise DamagedCheckpoint(f"{path}: field 'payload': expected a byte tensor")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer.get("sha256"):
        raise DamagedCheckpoint(f"{path}: the payload does not match its SHA-256 (the file was altered or damaged)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise DamagedCheckpoint(f"{path}: payload unreadable ({_summary(error)})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise DamagedCheckpoint(f"{path}: field 'step': expected a training state, found none")
    return state


class CheckpointStore:
    """`RUN_DIR/checkpoints/step_XXXXXXXX.pt` (the last `keep_last`) and `best.pt`."""

    def __init__(self, run_dir: Path, keep_last: int) -> None:
        self.run_dir = run_dir
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

    def open_run(self, resume: bool, restart: bool, is_main: bool = True) -> dict[str, Any] | None:
        """The state to resume from (None: a fresh run). `restart` moves an earlier run aside (rank 0 only);
        a fresh run refuses a directory that holds checkpoints; `resume` fails unless a checkpoint is usable."""
        if resume and restart:
            raise VocoderError("--resume continues a run and --restart starts it over: pass one")
        if restart:
            if is_main:
                self._move_aside()
            return None
        if resume:
            return self.load_latest()
        if self.saved_steps() or self.best_path.is_file():
            raise VocoderError(
                f"{self.run_dir}: holds checkpoints already; pass --resume to continue, --restart to start over "
                "(the earlier run is moved aside), or use another --out"
            )
        return None

    def _move_aside(self) -> None:
        """Keep an earlier run's checkpoints and exports under `replaced-<time>/`: starting over loses nothing."""
        present = [self.run_dir / name for name in ("checkpoints", *EXPORTS) if (self.run_dir / name).exists()]
        if not present:
            return
        aside = self.run_dir / f"replaced-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        aside.mkdir(parents=True)
        for path in present:
            path.rename(aside / path.name)
        log.warning("--restart: the earlier run's %s moved to %s", ", ".join(p.name for p in present), aside)

    def save(self, payload: dict[str, Any], step: int, is_best: bool) -> Path:
        """Write step `step`'s checkpoint, then delete the oldest beyond `keep_last` among those up to `step`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        save_checkpoint(payload, path)
        if is_best:
            save_checkpoint(payload, self.best_path)
        earlier = [saved for saved in self.saved_steps() if saved <= step]
        for old in earlier[: -self.keep_last]:
            self.path_for(old).unlink(missing_ok=True)
        return path

    def load_latest(self) -> dict[str, Any]:
        """The newest good checkpoint, else `best.pt`. Damaged ones (a crash mid-write on another filesystem, a
        full disk, an altered file) are reported and renamed `*.damaged`, so rotation never counts them; with no
        usable checkpoint the run stops with a `VocoderError` instead of starting over on top of the old one."""
        candidates = [self.path_for(step) for step in reversed(self.saved_steps())]
        problems = []
        for path in [*candidates, self.best_path]:
            if not path.is_file():
                continue
            try:
                state = read_checkpoint(path)
            except DamagedCheckpoint as error:
                log.warning("skipping damaged checkpoint %s", error)
                problems.append(str(error))
                if path != self.best_path:
                    path.rename(path.with_name(f"{path.name}.damaged"))
                continue
            if path == self.best_path:
                log.warning("no good step checkpoint: resuming from %s (step %d)", path, state["step"])
            return state
        found = "; ".join(problems) or "no checkpoints"
        raise VocoderError(
            f"--resume: no usable checkpoint in {self.directory} ({found}); pass --restart to start over "
            "(the earlier run is moved aside)"
        )


def _recorded(model_file: Path) -> dict[str, Any] | None:
    """The metadata of an existing export (None: there is none, or it is unreadable and may be replaced)."""
    if not model_file.is_file():
        return None
    try:
        return read_model_header(model_file)[2]
    except (CheckpointError, json.JSONDecodeError):
        return None


def is_newer_export(model_file: Path, metadata: dict[str, Any]) -> bool:
    """Whether `metadata`'s model may replace the export `model_file`: not if trained fewer steps (a run resumed
    from an older checkpoint than the one exported)."""
    existing = _recorded(model_file)
    return existing is None or int(metadata.get("steps", 0)) >= int(existing.get("steps", 0))


def is_better_export(model_file: Path, metadata: dict[str, Any]) -> bool:
    """Whether `metadata`'s model may replace the best export `model_file`: not with a worse validation loss."""
    existing = _recorded(model_file)
    old = None if existing is None else existing.get("valid_loss")
    new = metadata.get("valid_loss")
    return old is None or not math.isfinite(old) or (new is not None and new <= old)


def load_training_state(path: Path) -> dict[str, Any]:
    """A training state saved elsewhere (a bundled model's `training/state.pt`, another run's checkpoint), for
    `--resume-from`: verified like a checkpoint; a missing or damaged file is an error, not a skip."""
    if not path.is_file():
        raise VocoderError(f"{path}: no such training state")
    return read_checkpoint(path)
