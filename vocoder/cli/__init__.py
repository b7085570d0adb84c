"""Console entry point `vocoder`: a thin shell over the library; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

# Each command module registers its commands on the app when imported.
from vocoder.cli import (  # noqa: F401
    bench,
    bundle,
    corpus,
    distill,
    evaluate,
    export,
    features,
    frontend,
    mos,
    serve,
    synthesize,
    train,
)
from vocoder.cli.app import app
from vocoder.errors import VocoderError


def main() -> None:
    """Run the CLI; bad input ends with a one-line error and exit status 2, never a traceback."""
    try:
        app()  # standalone mode: typer reports usage errors itself and exits with status 2
    except VocoderError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
