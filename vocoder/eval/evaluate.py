"""The objective evaluation run: score every paired file of every system, then write per-system CSVs, a
markdown summary with 95% intervals and per-utterance spectrogram comparisons."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vocoder.audio import load_wav
from vocoder.eval import metrics
from vocoder.eval.pairing import Pairing, pair_files
from vocoder.eval.plots import spectrogram_comparison
from vocoder.eval.stats import mean_ci

DNSMOS_METRICS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")
# name -> (column heading, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "mcd_db": ("MCD (dB)", False),
    "f0_rmse_cents": ("log-F0 RMSE (cents)", False),
    "vuv_error": ("V/UV error", False),
    "pesq_wb": ("PESQ-WB", True),
    "stoi": ("STOI", True),
    "mrstft": ("MR-STFT dist.", False),
    "dnsmos_ovrl": ("DNSMOS OVRL*", True),
    "dnsmos_sig": ("DNSMOS SIG*", True),
    "dnsmos_bak": ("DNSMOS BAK*", True),
}
NO_VALUE_REASONS = {
    "f0_rmse_cents": "no file has a frame that Harvest finds voiced in both the reference and the system, so there "
    "is no pitch to compare (the V/UV error column says how much of the voicing differs)",
    "pesq_wb": "PESQ found no speech in any file, or every file is too short for it",
}
"""Why a system's cell can be empty ("–"): said in a footnote, not left for the reader to guess."""
NO_VALUE_OTHERWISE = "no file gave a value"


@dataclass
class EvaluationResult:
    """Per-file scores per system (NaN where a metric could not be computed) and the files a system lacks."""

    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    reference_dnsmos: dict[str, dict[str, float]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)


def score_pair(
    reference: np.ndarray,
    system: np.ndarray,
    reference_16k: np.ndarray,
    system_16k: np.ndarray,
    sample_rate: int,
    with_dnsmos: bool,
) -> dict[str, float]:
    """All intrusive metrics of one system file against its reference, plus the system's DNSMOS."""
    spectral = metrics.spectral_f0_scores(reference, system, sample_rate)
    row = {
        "mcd_db": spectral.mcd_db,
        "f0_rmse_cents": spectral.f0_rmse_cents,
        "vuv_error": spectral.vuv_error,
        "pesq_wb": metrics.pesq_wb(reference_16k, system_16k),
        "stoi": metrics.stoi(reference_16k, system_16k),
        "mrstft": metrics.mrstft_distance(reference, system),
    }
    row.update(metrics.dnsmos(system_16k) if with_dnsmos else dict.fromkeys(DNSMOS_METRICS, math.nan))
    return row


def run_evaluation(
    reference_dir: Path,
    systems: list[tuple[str, Path]],
    out_dir: Path,
    sample_rate: int = 16000,
    with_dnsmos: bool = True,
    with_spectrograms: bool = True,
    progress: bool = False,
) -> EvaluationResult:
    """Pair, score and write the report; returns the scores so callers and tests can use them directly."""
    metrics.mcep_alpha(sample_rate)  # an unsupported rate fails before any work is done
    pairing = pair_files(reference_dir, systems)
    result = EvaluationResult(missing=pairing.missing)
    result.scores = {name: {} for name, _ in systems}
    for utterance, reference_path in tqdm(sorted(pairing.reference.items()), disable=not progress, unit="utt"):
        reference = load_wav(reference_path, sample_rate)
        reference_16k = _at_16k(reference, reference_path, sample_rate)
        if with_dnsmos:
            result.reference_dnsmos[utterance] = metrics.dnsmos(reference_16k)
        panels = [("reference", reference)]
        for name, files in pairing.systems.items():
            if utterance not in files:
                continue
            system = load_wav(files[utterance], sample_rate)
            system_16k = _at_16k(system, files[utterance], sample_rate)
            result.scores[name][utterance] = score_pair(
                reference, system, reference_16k, system_16k, sample_rate, with_dnsmos
            )
            panels.append((name, system))
        if with_spectrograms:
            image = out_dir / "spectrograms" / f"{_safe_name(utterance)}.png"
            spectrogram_comparison(panels, sample_rate, utterance, image)
    _write_csvs(result, pairing, out_dir)
    (out_dir / "summary.md").write_text(summary_markdown(result, pairing, sample_rate, with_dnsmos))
    return result


def _at_16k(wav: np.ndarray, path: Path, sample_rate: int) -> np.ndarray:
    """The 16 kHz version PESQ, STOI and DNSMOS need, without reading the file again when it already is."""
    return wav if sample_rate == metrics.DNSMOS_RATE else load_wav(path, metrics.DNSMOS_RATE)


def _safe_name(utterance: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", utterance)


def _format(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def _write_csvs(result: EvaluationResult, pairing: Pairing, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, scores in result.scores.items():
        with (out_dir / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["utterance", "status", *METRICS])
            for utterance in sorted(pairing.reference):
                if utterance in scores:
                    writer.writerow([utterance, "ok", *(_format(scores[utterance][m]) for m in METRICS)])
                else:
                    writer.writerow([utterance, "missing", *([""] * len(METRICS))])
    if result.reference_dnsmos:
        with (out_dir / "reference_dnsmos.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["utterance", *DNSMOS_METRICS])
            for utterance, scores in sorted(result.reference_dnsmos.items()):
                writer.writerow([utterance, *(_format(scores[m]) for m in DNSMOS_METRICS)])


def _cell(values: list[float]) -> str:
    summary = mean_ci(values)
    if summary.n == 0:
        return "–"
    if summary.n == 1:
        return f"{summary.mean:.3g} (n=1)"
    return f"{summary.mean:.3g} [{summary.low:.3g}, {summary.high:.3g}]"


def summary_markdown(result: EvaluationResult, pairing: Pairing, sample_rate: int, with_dnsmos: bool) -> str:
    """Mean and t-based 95% interval per system and metric; missing files are listed, not silently dropped."""
    shown = [m for m in METRICS if with_dnsmos or m not in DNSMOS_METRICS]
    heading = [f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}" for m in shown]
    lines = [
        "# Objective evaluation",
        "",
        f"Reference: {len(pairing.reference)} utterances; analysis at {sample_rate} Hz (PESQ, STOI and DNSMOS at "
        "16 kHz). Cells: mean [95% t-interval] over files; ↑ higher is better, ↓ lower is better.",
        "",
        "| system | files | " + " | ".join(heading) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    empty: dict[str, list[str]] = {}  # metric -> systems without a value
    for name, scores in result.scores.items():
        cells = [_cell([row[m] for row in scores.values()]) for m in shown]
        for metric, cell in zip(shown, cells, strict=True):
            if cell == "–":
                empty.setdefault(metric, []).append(name)
        lines.append(f"| {name} | {len(scores)} | " + " | ".join(cells) + " |")
    if with_dnsmos and result.reference_dnsmos:
        cells = [
            _cell([row[m] for row in result.reference_dnsmos.values()]) if m in DNSMOS_METRICS else "–" for m in shown
        ]
        lines.append(f"| reference | {len(result.reference_dnsmos)} | " + " | ".join(cells) + " |")
    lines += ["", "Metric definitions: docs/EVALUATION.md."]
    for metric, names in empty.items():
        reason = NO_VALUE_REASONS.get(metric, NO_VALUE_OTHERWISE)
        lines.append(f"\n– {METRICS[metric][0]} of {', '.join(names)}: {reason}.")
    if with_dnsmos and result.reference_dnsmos:
        lines.append("\n– The reference row has only DNSMOS: the other metrics compare a system with the reference.")
    if with_dnsmos:
        lines.append(
            "\n\\* DNSMOS is a learned, non-intrusive estimate: indicative only, not a substitute for a listening test."
        )
    incomplete = {name: names for name, names in result.missing.items() if names}
    if incomplete:
        lines += ["", "## Missing files", ""]
        lines += [f"- {name}: {len(names)} missing: {', '.join(names)}" for name, names in incomplete.items()]
    return "\n".join(lines) + "\n"
