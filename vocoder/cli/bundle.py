"""`vocoder bundle`: put a trained model under models/<name>/ with its config and a generated model card."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app


@app.command()
def bundle(
    model: str = typer.Argument(..., help="model file or run directory's model/ folder"),
    name: str = typer.Option(..., help="the addressable name, e.g. teacher"),
    models_dir: Path = typer.Option(None, help="default: the bundled models folder"),
    data: list[Path] = typer.Option(
        [],
        help="feature cache it was trained on (summarised in the card; a model file that records no band of input "
        "levels gets the band of their training split); repeatable",
    ),
    evaluation: Path | None = typer.Option(None, help="an evaluation summary.md to include in the card"),
    notes: Path | None = typer.Option(None, help="a markdown file with notes for the card"),
    training_state: Path | None = typer.Option(
        None, help="the run's checkpoint to ship as training/state.pt (continued by `vocoder train --resume-from`)"
    ),
    sampling: str = typer.Option(
        "",
        help="a teacher's default sampling, SETTING=VALUE,... (temperature, top_k, top_p; e.g. temperature=0.8), "
        "written into the bundled copy: what a request's unset settings mean",
    ),
) -> None:
    """Bundle a trained model: model.safetensors, config.yaml and README.md (model card)."""
    from vocoder.generate.sampling import parse_settings
    from vocoder.models.bundle import bundle_model
    from vocoder.paths import bundled_models_dir

    target = bundle_model(
        model,
        name,
        models_dir or bundled_models_dir(),
        data,
        evaluation,
        notes.read_text() if notes else "",
        training_state,
        parse_settings(sampling, "--sampling"),
    )
    typer.echo(f"bundled {model} as {target}")
