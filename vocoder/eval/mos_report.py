"""The files of a MOS analysis: screening.md, report.md, report.html, mos.png, summary.csv, pairwise.csv."""

from __future__ import annotations

import csv
import html
import math
from dataclasses import asdict
from pathlib import Path

from vocoder.eval.mos_analyze import ANCHOR_FAIL_MIN, REFERENCE_FAIL_MAX, MosAnalysis, RatingsError, analyze
from vocoder.eval.plots import bar_chart

SCREEN_HEADERS = ["listener", "trials", "reference scores", "anchor scores", "SD of test scores", "result"]
SUMMARY_HEADERS = ["system", "listeners", "ratings", "MOS", "SD", "95% CI (t)", "95% CI (bootstrap L×U)"]
PAIR_HEADERS = ["A", "B", "test", "n", "mean A−B", "p", "p (Holm)"]


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def screening_rows(analysis: MosAnalysis) -> list[list[str]]:
    return [
        [
            s.listener,
            str(s.trials),
            " ".join(map(str, s.reference_scores)) or "–",
            " ".join(map(str, s.anchor_scores)) or "–",
            _fmt(s.test_sd),
            "; ".join(s.reasons) or "accepted",
        ]
        for s in analysis.screening
    ]


def write_screening(analysis: MosAnalysis, out_dir: Path) -> None:
    """The per-listener screening table, written even when no listener passes (that is when it is needed)."""
    lines = [
        "# Listener screening",
        "",
        f"A listener fails if they rated the natural reference <= {REFERENCE_FAIL_MAX} or the low anchor "
        f">= {ANCHOR_FAIL_MIN} at least once, or gave every test item the same score.",
        "",
        *_markdown_table(SCREEN_HEADERS, screening_rows(analysis)),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "screening.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_report(analysis: MosAnalysis, out_dir: Path) -> None:
    """The MOS table, pairwise tests and bar chart as markdown, HTML, CSV and PNG."""
    shown = analysis.summaries + analysis.gold
    bar_chart(
        [s.system for s in shown],
        [s.mos for s in shown],
        [s.t_low for s in shown],
        [s.t_high for s in shown],
        out_dir / "mos.png",
    )
    summary_rows = [
        [
            s.system,
            str(s.listeners),
            str(s.ratings),
            _fmt(s.mos),
            _fmt(s.sd),
            f"[{_fmt(s.t_low)}, {_fmt(s.t_high)}]",
            f"[{_fmt(s.boot_low)}, {_fmt(s.boot_high)}]",
        ]
        for s in shown
    ]
    pair_rows = [
        [c.first, c.second, c.test, str(c.n), _fmt(c.difference), _p(c.p), _p(c.p_holm)] for c in analysis.comparisons
    ]
    rejected = sum(1 for s in analysis.screening if s.reasons)
    intro = (
        f"Package {analysis.package_id}: {analysis.trials} trials from {len(analysis.screening)} listener(s) in "
        f"{analysis.files} file(s); {rejected} listener(s) excluded by screening"
        + (
            f"; {analysis.repeats} repeated rating(s) of the same stimulus by the same listener ignored"
            if analysis.repeats
            else ""
        )
        + ". ITU-T P.800 ACR naturalness, 5 Excellent … 1 Bad. Gold rows use the accepted listeners only, so they "
        "are biased by the screening itself."
    )
    notes = (
        "The t-interval treats ratings as independent; the bootstrap interval resamples listeners and utterances "
        f"({analysis.bootstrap} replicates) and is the one to quote. Pairwise: Wilcoxon signed-rank on "
        "per-listener means when the two systems share their listeners, otherwise Mann-Whitney U on ratings; "
        "Holm-corrected."
    )
    markdown = [
        "# MOS listening test",
        "",
        intro,
        "",
        "![MOS with 95% t-intervals](mos.png)",
        "",
        "## Per system",
        "",
        *_markdown_table(SUMMARY_HEADERS, summary_rows),
        "",
        notes,
        "",
        "## Pairwise comparisons",
        "",
        *(_markdown_table(PAIR_HEADERS, pair_rows) if pair_rows else ["(only one system)"]),
        "",
        "Listener screening: screening.md.",
    ]
    (out_dir / "report.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>MOS listening test</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
        "</style></head><body><h1>MOS listening test</h1>"
        f"<p>{html.escape(intro)}</p><img src='mos.png' alt='MOS with 95% t-intervals'>"
        f"<h2>Per system</h2>{_html_table(SUMMARY_HEADERS, summary_rows)}<p>{html.escape(notes)}</p>"
        f"<h2>Pairwise comparisons</h2>{_html_table(PAIR_HEADERS, pair_rows)}"
        f"<h2>Listener screening</h2>{_html_table(SCREEN_HEADERS, screening_rows(analysis))}</body></html>\n"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    _write_csv(out_dir / "summary.csv", [asdict(s) for s in shown])
    _write_csv(out_dir / "pairwise.csv", [asdict(c) for c in analysis.comparisons])


def analyze_and_report(
    package: Path, key_path: Path, rating_paths: list[Path], out_dir: Path, bootstrap: int = 2000, seed: int = 0
) -> MosAnalysis:
    """Analyse and write every report; stops with an error (after the screening report) if nobody passed."""
    analysis = analyze(package, key_path, rating_paths, bootstrap, seed)
    write_screening(analysis, out_dir)
    if not analysis.summaries:
        failed = sum(1 for s in analysis.screening if s.reasons)
        raise RatingsError(
            f"no test ratings remain after screening ({failed} listener(s) failed; see {out_dir / 'screening.md'})"
        )
    write_report(analysis, out_dir)
    return analysis
