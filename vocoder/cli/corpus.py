"""`vocoder corpus demo` and `vocoder preprocess`: build the demo corpus, turn corpora into feature caches."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.config import load_config

corpus_app = typer.Typer(help="Corpora: build the embedded demo corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("demo")
def demo(
    out: Path = typer.Option(..., "--out", help="directory for the corpus (wav/, lab/, metadata.jsonl)"),
    sentences: int | None = typer.Option(None, "--sentences", help="sentences per voice (default: all 200)"),
    voices: str = typer.Option("slt,kal,ked", "--voices", help="comma-separated Festival voices"),
    jobs: int = typer.Option(2, "--jobs", help="parallel Festival processes"),
) -> None:
    """Build the demo corpus with Festival: the project's sentences read by each voice, with aligned labels."""
    from vocoder.corpus.demo import build_demo_corpus

    chosen = tuple(voice.strip() for voice in voices.split(",") if voice.strip())
    started = time.monotonic()
    count = build_demo_corpus(out, sentences, chosen, jobs)
    typer.echo(f"{count} utterances in {out} ({time.monotonic() - started:.0f} s)")


@app.command()
def preprocess(
    corpus_dir: Path = typer.Argument(..., help="the corpus directory"),
    layout: str = typer.Option(..., "--layout", help="ljspeech, arctic, vctk, folder or demo"),
    out: Path = typer.Option(..., "--out", help="feature cache directory"),
    config: str = typer.Option("seed_size", "--config", help="config name or YAML path"),
    jobs: int | None = typer.Option(None, "--jobs", help="worker processes (default: all cores)"),
) -> None:
    """Resample, trim, normalise and extract features for every utterance into a feature cache."""
    from vocoder.corpus.preprocess import preprocess as run

    report = run(layout, corpus_dir, out, load_config(config), jobs)
    summary = {key: report[key] for key in ("utterances", "written", "reused")}
    typer.echo(f"{out}: {json.dumps(summary)}, skipped {len(report['skipped'])} (see {out / 'report.json'})")
