"""Files written whole or not at all: audio, feature files, caches, packs, model files, checkpoints and ONNX graphs,
which readers load while they may be rewritten or which a crash must not leave truncated, go through `atomic_path`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed over `path` when the block succeeds, removed when it
    fails, so a reader (or a crash) never meets a truncated file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
