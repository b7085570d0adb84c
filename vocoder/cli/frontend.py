"""`vocoder frontend`: text to linguistic feature files with Festival."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.config import load_config


@app.command()
def frontend(
    text_or_file: str = typer.Argument(..., help="a sentence, or a text file with one sentence per line"),
    voice: str = typer.Option("slt", "--voice", help="Festival voice: slt, kal or ked"),
    out: Path = typer.Option(..., "--out", help="directory for <id>.npz feature files and <id>.lab labels"),
    wav: bool = typer.Option(False, "--wav", help="also write Festival's own waveform, <id>.wav"),
    config: str = typer.Option("seed_size", "--config", help="config name or YAML path: sample rate, hop"),
    f0: str = typer.Option("waveform", "--f0", help="lf0/vuv from Festival's waveform (as in training) or targets"),
) -> None:
    """Run Festival on text: full-context labels, linguistic features, F0 and voicing, a speaker."""
    from vocoder.frontend.features import read_sentences, text_to_features

    sentences, stem = read_sentences(text_or_file)
    written = text_to_features(sentences, voice, out, load_config(config), stem=stem, wave=wav, f0_source=f0)
    for path in written:
        typer.echo(str(path))
