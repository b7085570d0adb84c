"""Console entry point `vocoder`: a thin shell over the library; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from vocoder.cli import bench, features, synthesize  # noqa: F401  (each module registers its commands)
from vocoder.cli.app import app
from vocoder.errors import VocoderError


def main() -> None:
    """Run the CLI; bad input ends with a one-line error and exit status 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except VocoderError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise
