"""Helpers shared by command modules: resolving a model or a config, and output paths."""

from __future__ import annotations

from pathlib import Path

from vocoder.config import Config, load_config
from vocoder.errors import VocoderError
from vocoder.models.checkpoint import read_model_header, resolve_model_path

DEFAULT_MODEL = "teacher"


def config_of(model: str | None, config: str | None) -> Config:
    """The config of `--model` (read from the model file's header) or of `--config`; one of the two."""
    if model and config:
        raise VocoderError("pass either --model or --config, not both")
    if config:
        return load_config(config)
    return read_model_header(resolve_model_path(model or DEFAULT_MODEL))[0]


def output_paths(inputs: list[Path], out: Path, suffix: str) -> list[Path]:
    """One output per input: `out` itself when it names a single file with `suffix`, else `out/<stem><suffix>`."""
    if out.suffix == suffix:
        if len(inputs) != 1:
            raise VocoderError(f"--out {out}: a single {suffix} file, but {len(inputs)} inputs; pass a directory")
        return [out]
    stems = [path.stem for path in inputs]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise VocoderError(f"inputs share the file names {duplicates}: their outputs in {out} would collide")
    return [out / f"{stem}{suffix}" for stem in stems]
