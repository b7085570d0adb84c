"""The `vocoder` Typer application that every command module registers on."""

import typer
from typer.core import TyperOption

from vocoder import __version__


def _flag_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """No value type beside a flag: typer's help showed `--version <bool>`, as if the flag took a value."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

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
