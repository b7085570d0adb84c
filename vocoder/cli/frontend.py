"""`vocoder frontend`: text to linguistic feature files with Festival."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.cli.common import config_of, linguistic_model
from vocoder.errors import VocoderError


@app.command()
def frontend(
    text_or_file: str = typer.Argument(..., help="a sentence, or a text file with one sentence per line"),
    voice: str = typer.Option("slt", "--voice", help="Festival voice: slt, kal or ked"),
    out: Path = typer.Option(..., "--out", help="directory for <id>.npz feature files and <id>.lab labels"),
    wav: bool = typer.Option(False, "--wav", help="also write Festival's own waveform, <id>.wav"),
    model: str | None = typer.Option(
        None, help="model name or path whose config to match (default: the bundled model that reads these features)"
    ),
    config: str | None = typer.Option(None, "--config", help="a config YAML or recipe name instead of a model"),
    f0: str = typer.Option("waveform", "--f0", help="lf0/vuv from Festival's waveform (as in training) or targets"),
) -> None:
    """Run Festival on text: full-context labels, linguistic features, F0 and voicing, a speaker."""
    from vocoder.frontend.features import read_sentences, text_to_features

    cfg = config_of(model or (None if config else linguistic_model()), config)
    if "linguistic" not in cfg.features.conditioning:
        chosen = f"--model {model}" if model else f"--config {config}"
        raise VocoderError(
            f"{chosen}: reads {' + '.join(cfg.features.conditioning)}, not the linguistic features made here; "
            f"make its features from audio with `vocoder extract {chosen}`"
        )
    sentences, stem = read_sentences(text_or_file)
    written = text_to_features(sentences, voice, out, cfg, stem=stem, wave=wav, f0_source=f0)
    for path in written:
        typer.echo(str(path))
