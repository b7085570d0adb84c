"""`vocoder distill`: distill a Parallel WaveNet student from a trained teacher; resumable; DDP under torchrun."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.cli.train import TIME_LIMIT_HELP, run_and_report


@app.command()
def distill(
    teacher: str = typer.Option(..., help="the teacher: bundled model name or model path"),
    config: str = typer.Option(..., help="config YAML or recipe name: the teacher's sections + student + train"),
    data: list[Path] = typer.Option(
        ..., help="feature cache written by `vocoder preprocess`; repeat to distil on a mix of caches"
    ),
    out: Path = typer.Option(..., help="run directory: checkpoints, student model export, samples, TensorBoard logs"),
    resume: bool = typer.Option(False, help="continue from the newest good checkpoint in --out (else best.pt)"),
    restart: bool = typer.Option(False, help="start over in --out; its earlier checkpoints and exports move aside"),
    max_steps: int | None = typer.Option(None, min=1, help="stop at this step (default: train.max_steps)"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)"),
    init: str | None = typer.Option(None, help="fine-tune: start from this student model's weights (name or path)"),
    resume_from: Path | None = typer.Option(
        None, help="continue a saved distillation state (a checkpoint, a bundled training/state.pt) in a new --out"
    ),
    time_limit: float | None = typer.Option(None, min=1, help=TIME_LIMIT_HELP),
) -> None:
    """Train a student by probability density distillation plus spectral losses (docs/STUDENT.md)."""
    from vocoder.config import load_config
    from vocoder.train.distill import DistillTrainer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer = DistillTrainer(
        teacher, load_config(config), data, out, device, resume, max_steps, init, restart, resume_from
    )
    run_and_report(trainer, "student", time_limit)
