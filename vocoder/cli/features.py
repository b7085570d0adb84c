"""`vocoder extract`: audio files to feature files that match a model's config (copy synthesis, step one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vocoder.cli.app import app
from vocoder.cli.common import config_of, output_paths
from vocoder.errors import VocoderError


@app.command()
def extract(
    inputs: list[Path] = typer.Argument(..., help="audio files (any format soundfile reads)"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory, or one .npz file for one input"),
    model: str | None = typer.Option(None, help="model name or path whose config to match (default: teacher)"),
    config: str | None = typer.Option(None, help="a config YAML or recipe name instead of a model"),
    speaker: str | None = typer.Option(None, help="speaker name stored in the feature files"),
) -> None:
    """Extract conditioning features (log-mel, F0) from audio files, one .npz per file."""
    import soundfile

    from vocoder.audio import load_wav
    from vocoder.features.acoustic import extract_features
    from vocoder.features.featurefile import save_features, validate_features

    cfg = config_of(model, config)
    if cfg.speakers and speaker is None:
        typer.secho(
            f"note: {cfg.name} is multi-speaker {cfg.speakers}; without --speaker here, pass one at synthesis", err=True
        )
    failures = 0
    for source, target in zip(inputs, output_paths(inputs, out, ".npz"), strict=True):
        try:
            wav = load_wav(source, cfg.audio.sample_rate)
            _note_conversion(source, soundfile.info(str(source)), cfg.audio.sample_rate)
            features = extract_features(wav, cfg, speaker=speaker, source=str(source))
            validate_features(features, cfg, require_speaker=False)
        except VocoderError as error:
            typer.secho(f"skipped: {error}", err=True, fg=typer.colors.YELLOW)
            failures += 1
            continue
        save_features(target, features)
        typer.echo(f"{source} -> {target} ({features.n_frames} frames)")
    if failures:
        raise VocoderError(f"{failures} of {len(inputs)} inputs could not be extracted (see above)")


def _note_conversion(source: Path, info: Any, sample_rate: int) -> None:
    """One line on stderr when the audio was changed to fit the model: mixed down to mono, resampled."""
    changes = []
    if info.channels > 1:
        changes.append(f"{info.channels} channels mixed down to mono")
    if info.samplerate != sample_rate:
        changes.append(f"resampled from {info.samplerate} Hz to the model's {sample_rate} Hz")
    if changes:
        typer.secho(f"note: {source}: {'; '.join(changes)}", err=True)
