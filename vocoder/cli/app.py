"""The `vocoder` Typer application that every command module registers on."""

import typer

app = typer.Typer(
    name="vocoder",
    help="Conditional WaveNet vocoder and TTS: features, synthesis, training, distillation, evaluation, serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
