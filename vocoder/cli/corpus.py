"""`vocoder corpus demo` and `vocoder preprocess`: build the demo corpus, turn corpora into feature caches."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from vocoder.cli.app import app

corpus_app = typer.Typer(
    help="Corpora: build the embedded demo corpus; install and preprocess real recorded speech.", no_args_is_help=True
)
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


@corpus_app.command("real")
def real(
    out: Path = typer.Option(Path("data/real"), "--out", help="corpora/ (links, decoded files), feats/<source>/"),
    config: str = typer.Option(
        "real_student_lpc_sine",
        "--config",
        help="config whose audio and features the caches hold (the default, the bundled student's, adds the F0 its "
        "harmonic source reads to the mel: the caches serve the bundled teacher and student)",
    ),
    sources: str = typer.Option(
        "festvox-ru,ktuberling,asterisk-en", "--sources", help="comma-separated: festvox-ru, ktuberling, asterisk-en"
    ),
    install: bool = typer.Option(True, help="apt-get install missing Debian packages (as root)"),
    jobs: int | None = typer.Option(None, "--jobs", help="preprocessing worker processes (default: all cores)"),
) -> None:
    """Real recorded speech from Debian packages as feature caches, each with a fixed held-out split: festvox-ru
    and ktuberling to train on, asterisk-en (never trained on) to evaluate."""
    from vocoder.config import load_config
    from vocoder.corpus.real import build_real_corpus

    names = [name.strip() for name in sources.split(",") if name.strip()]
    recipe = load_config(config)
    summary = build_real_corpus(out, recipe, names, install, jobs)
    for name, entry in summary.items():
        typer.echo(
            f"{name} ({entry['role']}): {entry['minutes']} min, splits {entry['utterances']}, "
            f"skipped {entry['skipped']}; cache {entry['cache']}"
        )
    train = " ".join(f"--data {entry['cache']}" for entry in summary.values() if entry["role"] == "train")
    if train:
        command = "distill --teacher teacher" if recipe.student is not None else "train"
        typer.echo(f"train on them: vocoder {command} --config {config} {train} --out runs/real")


@corpus_app.command("pack")
def pack(
    caches: list[Path] = typer.Argument(..., help="feature caches (vocoder preprocess / corpus real), each a source"),
    out: Path = typer.Option(..., "--out", help="new pack directory"),
    max_mb: float = typer.Option(30.0, "--max-mb", min=0.1, help="budget, MiB of FLAC audio and F0"),
    valid_utterances: int = typer.Option(8, "--valid", min=0, help="validation utterances per source"),
) -> None:
    """A lossless FLAC copy of a budgeted share of the caches' training audio, with their F0, to train where the
    caches do not fit (a lent GPU machine takes 64 MiB); `vocoder corpus unpack` rebuilds caches from it."""
    from vocoder.corpus.pack import pack_caches

    index = pack_caches(caches, out, round(max_mb * 2**20), valid_utterances)
    for name, entry in index["sources"].items():
        typer.echo(
            f"{name}: {entry['utterances']['train']} training utterances ({entry['train_seconds'] / 60:.1f} of "
            f"{entry['of_train_seconds'] / 60:.1f} min), {entry['utterances']['valid']} validation"
        )
    typer.echo(f"{out}: {index['bytes'] / 2**20:.1f} MiB")


@corpus_app.command("unpack")
def unpack(
    pack_dir: Path = typer.Argument(..., help="a pack written by vocoder corpus pack"),
    out: Path = typer.Option(..., "--out", help="directory for one feature cache per packed source"),
    config: str = typer.Option(..., "--config", help="config whose features to extract (the pack's rate and hop)"),
    jobs: int | None = typer.Option(None, "--jobs", help="worker processes (default: all cores)"),
) -> None:
    """Feature caches rebuilt from a pack: its audio, ids and splits, features extracted with --config."""
    from vocoder.config import load_config
    from vocoder.corpus.pack import unpack as run

    written = run(pack_dir, out, load_config(config), jobs)
    typer.echo(" ".join(f"--data {out / name}" for name in written) + f"  ({sum(written.values())} utterances)")


@app.command()
def preprocess(
    corpus_dir: Path = typer.Argument(..., help="the corpus directory"),
    layout: str = typer.Option(..., "--layout", help="ljspeech, festvox (or arctic), vctk, folder or demo"),
    out: Path = typer.Option(..., "--out", help="feature cache directory"),
    config: str = typer.Option("seed_size", "--config", help="config name or YAML path"),
    jobs: int | None = typer.Option(None, "--jobs", help="worker processes (default: all cores)"),
) -> None:
    """Resample, trim, normalise and extract features for every utterance into a feature cache."""
    from vocoder.config import load_config
    from vocoder.corpus.preprocess import preprocess as run

    report = run(layout, corpus_dir, out, load_config(config), jobs)
    summary = {key: report[key] for key in ("utterances", "written", "reused")}
    typer.echo(f"{out}: {json.dumps(summary)}, skipped {len(report['skipped'])} (see {out / 'report.json'})")
