"""`vocoder evaluate`: objective metrics of one or more systems against reference recordings."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app


@app.command()
def evaluate(
    reference: Path = typer.Option(..., "--reference", help="Directory of reference (natural) recordings."),
    system: list[str] = typer.Option(..., "--system", help="NAME=DIR of a system's outputs; repeat per system."),
    out: Path = typer.Option(..., "--out", help="Report directory (CSVs, summary.md, spectrograms/)."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Analysis rate for MCD, F0 and MR-STFT."),
    dnsmos: bool = typer.Option(True, "--dnsmos/--no-dnsmos", help="Also compute the indicative DNSMOS."),
    spectrograms: bool = typer.Option(True, "--spectrograms/--no-spectrograms", help="Write spectrogram PNGs."),
) -> None:
    """Pair files by name and write MCD, F0, PESQ, STOI, MR-STFT and DNSMOS per file and per system."""
    from vocoder.eval.evaluate import run_evaluation
    from vocoder.eval.pairing import parse_system

    systems = [parse_system(spec) for spec in system]
    result = run_evaluation(reference, systems, out, sample_rate, dnsmos, spectrograms, progress=True)
    for name, names in result.missing.items():
        if names:
            typer.secho(f"warning: system {name!r} lacks {len(names)} reference utterance(s)", err=True)
    typer.echo(f"wrote {out / 'summary.md'}")
