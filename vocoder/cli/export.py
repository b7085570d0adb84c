"""`vocoder export`: a model in a format other runtimes read (ONNX: the Parallel WaveNet student)."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.errors import VocoderError


@app.command()
def export(
    model: str = typer.Option("student", help="a student: bundled name or model file"),
    out: Path = typer.Option(..., help="folder for student.onnx, upsampler.onnx and export.json"),
    export_format: str = typer.Option("onnx", "--format", help="onnx (the only one)"),
) -> None:
    """Export a Parallel WaveNet student to ONNX: its conditioning upsampler (frames in; for a student with a
    harmonic source, also the frame F0 in Hz) and its whole one-pass synthesis (noise and upsampled conditioning in,
    waveform out), for onnxruntime without PyTorch (docs/SERVICE.md)."""
    from vocoder.api import load
    from vocoder.onnx_export import export_student

    if export_format != "onnx":
        raise VocoderError(f"--format: expected onnx, found {export_format!r}")
    manifest = export_student(load(model, "cpu"), out)
    for part in ("upsampler", "student"):
        entry = manifest[part]
        assert isinstance(entry, dict)
        typer.echo(f"{out / entry['file']}: {', '.join(entry['inputs'])} -> {', '.join(entry['outputs'])}")
