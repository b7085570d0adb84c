"""Helpers shared by command modules: resolving a model or a config, and output paths.

Like every command module, it imports the library (torch, pydantic) only when a command runs: `vocoder --help`
stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vocoder.errors import VocoderError

if TYPE_CHECKING:
    from vocoder.config import Config

DEFAULT_MODEL = "teacher"


def config_of(model: str | None, config: str | None) -> Config:
    """The config of `--model` (read from the model file's header) or of `--config`; one of the two."""
    from vocoder.config import load_config
    from vocoder.models.checkpoint import read_model_header, resolve_model_path

    if model and config:
        raise VocoderError("pass either --model or --config, not both")
    if config:
        return load_config(config)
    return read_model_header(resolve_model_path(model or DEFAULT_MODEL))[0]


def linguistic_model() -> str:
    """The one bundled model that reads linguistic features: the default of the commands and routes that make
    them from text."""
    from vocoder.models.checkpoint import bundled_model_names, read_model_header, resolve_model_path

    names = [
        name
        for name in bundled_model_names()
        if "linguistic" in read_model_header(resolve_model_path(name))[0].features.conditioning
    ]
    if len(names) != 1:
        raise VocoderError(f"--model: {len(names)} bundled models read linguistic features ({names}); name one")
    return names[0]


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
