"""`vocoder mos export|analyze`: build a blinded listening-test package, then analyse the returned ratings."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.constants import DEFAULT_GOLD_PER_KIND

mos_app = typer.Typer(
    help="MOS listening test (ITU-T P.800 ACR): export a test package, analyse ratings.", no_args_is_help=True
)
app.add_typer(mos_app, name="mos")


@mos_app.command("export")
def export(
    reference: Path = typer.Option(..., "--reference", help="Directory of natural recordings (gold items too)."),
    system: list[str] = typer.Option(..., "--system", help="NAME=DIR of a system's outputs; repeat per system."),
    out: Path = typer.Option(..., "--out", help="New package directory (index.html + audio/)."),
    key: Path | None = typer.Option(None, "--key", help="Unblinding key path; default PKG.key.json beside PKG."),
    items_per_listener: int | None = typer.Option(
        None, "--items-per-listener", help="Test items per listener (default: one per utterance)."
    ),
    listeners: int | None = typer.Option(
        None, "--listeners", help="Number of playlists (default: enough to rate every cell once)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of ids, playlists and the anchor's noise."),
    loudness: float = typer.Option(-23.0, "--loudness", help="Target integrated loudness, LUFS (BS.1770)."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Sample rate of the stimuli."),
    gold_per_kind: int | None = typer.Option(
        None,
        "--gold-per-kind",
        help=f"Reference and anchor checks per listener (default {DEFAULT_GOLD_PER_KIND}, fewer on fewer utterances).",
    ),
    familiarisation: int = typer.Option(3, "--familiarisation", help="Unrated examples shown before the test."),
) -> None:
    """Write a self-contained, blinded test package and its key (kept outside the package)."""
    from vocoder.eval.mos_export import PEAK_CEILING_DBFS, default_key_path, export_package
    from vocoder.eval.pairing import parse_system

    systems = [parse_system(spec) for spec in system]
    key_path = key or default_key_path(out)
    written = export_package(
        reference,
        systems,
        out,
        key_path,
        items_per_listener,
        listeners,
        seed,
        loudness,
        sample_rate,
        gold_per_kind,
        familiarisation,
    )
    limited = sum(item["peak_limited"] for item in written["stimuli"].values())
    if written["dropped_utterances"]:
        typer.secho(
            f"warning: {len(written['dropped_utterances'])} utterance(s) not in every system were left out",
            err=True,
        )
    typer.echo(
        f"wrote {out / 'index.html'}: {written['listeners']} playlist(s), {len(written['stimuli'])} stimuli at "
        f"{loudness:g} LUFS ({limited} lowered to keep the peak below {PEAK_CEILING_DBFS:g} dBFS); key: {key_path} "
        "(keep it away from listeners)"
    )


@mos_app.command("analyze")
def analyze(
    test: Path = typer.Option(..., "--test", help="The exported package directory."),
    key: Path = typer.Option(..., "--key", help="The package's unblinding key (PKG.key.json)."),
    ratings: list[Path] = typer.Option(..., "--ratings", help="Downloaded ratings CSV file(s): --ratings A B ..."),
    more_ratings: list[Path] | None = typer.Argument(None, help="Further ratings files after --ratings."),
    out: Path = typer.Option(..., "--out", help="Report directory."),
    bootstrap: int = typer.Option(2000, "--bootstrap", min=100, help="Bootstrap replicates."),
) -> None:
    """Screen listeners, then report MOS with intervals and Holm-corrected pairwise tests."""
    from vocoder.eval.mos_report import analyze_and_report

    result = analyze_and_report(test, key, [*ratings, *(more_ratings or [])], out, bootstrap)
    rejected = sum(1 for s in result.screening if s.reasons)
    typer.echo(f"wrote {out / 'report.md'} and report.html ({rejected} listener(s) excluded by screening)")
