"""The `vocoder` Typer application that every command module registers on."""

import typer

from vocoder import __version__

app = typer.Typer(
    name="vocoder",
    help="Conditional WaveNet vocoder and TTS: features, synthesis, training, distillation, evaluation, serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"vocoder {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Conditional WaveNet vocoder and TTS: features, synthesis, training, distillation, evaluation, serving."""
