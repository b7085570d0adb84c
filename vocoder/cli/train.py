"""`vocoder train`: train a teacher on a feature cache; resumable; under torchrun it runs DDP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vocoder.cli.app import app

TIME_LIMIT_HELP = "seconds: stop at the first step past it, validated, checkpointed and exported"

if TYPE_CHECKING:  # imported when a command runs: `vocoder --help` stays fast
    from vocoder.train.trainer import Trainer


@app.command()
def train(
    config: str = typer.Option(..., help="config YAML or recipe name (model + train sections)"),
    data: list[Path] = typer.Option(
        ..., help="feature cache written by `vocoder preprocess`; repeat to train on a mix of caches"
    ),
    out: Path = typer.Option(..., help="run directory: checkpoints, model export, samples, TensorBoard logs"),
    resume: bool = typer.Option(False, help="continue from the newest good checkpoint in --out (else best.pt)"),
    restart: bool = typer.Option(False, help="start over in --out; its earlier checkpoints and exports move aside"),
    max_steps: int | None = typer.Option(None, min=1, help="stop at this step (default: train.max_steps)"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)"),
    init: str | None = typer.Option(None, help="fine-tune: start from this teacher model's weights (name or path)"),
    resume_from: Path | None = typer.Option(
        None, help="continue a saved training state (e.g. models/teacher/training/state.pt) in a new --out"
    ),
    time_limit: float | None = typer.Option(None, min=1, help=TIME_LIMIT_HELP),
) -> None:
    """Train a teacher WaveNet. Multi-GPU: `torchrun --nproc_per_node N -m vocoder.cli train ...`."""
    from vocoder.config import load_config
    from vocoder.train.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_and_report(
        Trainer(load_config(config), data, out, device, resume, max_steps, init, restart, resume_from),
        "model",
        time_limit,
    )


def run_and_report(trainer: Trainer, exported: str, time_limit: float | None = None) -> None:
    """Run a teacher or student training to its end or its `time_limit` (closing the process group either way);
    rank 0 prints one summary line naming the `exported` model."""
    try:
        summary = trainer.run(time_limit)
    finally:
        trainer.dist.close()
    if trainer.dist.is_main:
        valid = "n/a" if summary.valid_loss is None else f"{summary.valid_loss:.4f}"
        typer.echo(
            f"step {summary.step}: train loss {summary.train_loss:.4f}, valid loss {valid}, "
            f"{summary.wall_seconds:.0f} s; {exported}: {summary.model_path}"
        )
