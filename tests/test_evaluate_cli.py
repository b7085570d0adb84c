"""`vocoder evaluate` end to end: pairing, per-file CSVs, the summary with intervals, spectrograms, errors."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from tests.eval_synthetic import write_corpus
from vocoder.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["vocoder", *args])
    try:
        main()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def test_evaluate_writes_csvs_summary_and_spectrograms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two systems, one of them missing a file; DNSMOS (half a second of CPU per file) has a test of its own below."""
    dirs = write_corpus(tmp_path, count=2, skip_mulaw=("utt1",))
    out = tmp_path / "report"
    status = run_cli(
        monkeypatch,
        "evaluate",
        "--reference",
        str(dirs["reference"]),
        "--system",
        f"lowpass={dirs['lowpass']}",
        "--system",
        f"mulaw={dirs['mulaw']}",
        "--out",
        str(out),
        "--no-dnsmos",
    )
    assert status == 0
    lowpass = list(csv.DictReader((out / "lowpass.csv").open()))
    mulaw = list(csv.DictReader((out / "mulaw.csv").open()))
    assert [row["utterance"] for row in lowpass] == ["utt0", "utt1"]
    assert all(row["status"] == "ok" and float(row["mcd_db"]) > 0 and row["dnsmos_ovrl"] == "" for row in lowpass)
    assert [row["status"] for row in mulaw] == ["ok", "missing"]
    assert mulaw[1]["mcd_db"] == ""
    summary = (out / "summary.md").read_text()
    assert "| lowpass | 2 |" in summary and "| mulaw | 1 |" in summary
    assert "mulaw: 1 missing: utt1" in summary
    assert "DNSMOS OVRL" not in summary and "indicative" not in summary and not (out / "reference_dnsmos.csv").exists()
    assert sorted(p.name for p in (out / "spectrograms").iterdir()) == ["utt0.png", "utt1.png"]
    assert (out / "spectrograms" / "utt0.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluate_scores_dnsmos_for_each_system_file_and_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = write_corpus(tmp_path, count=1)
    out = tmp_path / "report"
    status = run_cli(
        monkeypatch, "evaluate", "--reference", str(dirs["reference"]), "--system", f"lowpass={dirs['lowpass']}",
        "--out", str(out),
    )  # fmt: skip
    assert status == 0
    [row] = list(csv.DictReader((out / "lowpass.csv").open()))
    assert all(1.0 <= float(row[name]) <= 5.0 for name in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"))
    [reference] = list(csv.DictReader((out / "reference_dnsmos.csv").open()))
    assert reference["utterance"] == "utt0" and 1.0 <= float(reference["dnsmos_ovrl"]) <= 5.0
    summary = (out / "summary.md").read_text()
    assert "| reference | 1 |" in summary and "The reference row has only DNSMOS" in summary
    assert "indicative" in summary


def test_unpaired_system_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = write_corpus(tmp_path, count=1)
    (dirs["lowpass"] / "utt0.wav").rename(dirs["lowpass"] / "utt0_renamed.wav")
    status = run_cli(
        monkeypatch,
        "evaluate",
        "--reference",
        str(dirs["reference"]),
        "--system",
        f"lowpass={dirs['lowpass']}",
        "--out",
        str(tmp_path / "report"),
        "--no-dnsmos",
    )
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "utt0_renamed" in error and "lowpass" in error


@pytest.mark.parametrize(
    ("spec", "message"),
    [("lowpass", "expected NAME=DIR"), ("reference=x", "not one of"), ("lowpass=/nonexistent", "does not exist")],
)
def test_bad_system_arguments_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    dirs = write_corpus(tmp_path, count=1)
    status = run_cli(
        monkeypatch, "evaluate", "--reference", str(dirs["reference"]), "--system", spec, "--out", str(tmp_path / "r")
    )
    assert status == 2
    assert message in capsys.readouterr().err


def test_an_empty_cell_of_the_summary_has_a_footnote_saying_why() -> None:
    """A student that is mostly unvoiced has no frame voiced in both signals: its log-F0 cell is "–", and the
    summary says why under the table (and why the reference row has only DNSMOS)."""
    import math

    from vocoder.eval.evaluate import METRICS, EvaluationResult, summary_markdown
    from vocoder.eval.pairing import Pairing

    row = dict.fromkeys(METRICS, 1.0)
    unvoiced = {**row, "f0_rmse_cents": math.nan}
    result = EvaluationResult(
        scores={"teacher": {"a": row, "b": row}, "student": {"a": unvoiced, "b": unvoiced}}, reference_dnsmos={"a": row}
    )
    pairing = Pairing(reference={"a": Path("a.wav"), "b": Path("b.wav")}, systems={}, missing={})
    summary = summary_markdown(result, pairing, 16000, with_dnsmos=True)
    student = next(line for line in summary.splitlines() if line.startswith("| student"))
    assert student.split(" | ")[3] == "–"
    assert "– log-F0 RMSE (cents) of student: no file has a frame that Harvest finds voiced in both" in summary
    assert "– The reference row has only DNSMOS" in summary
    assert "of teacher" not in summary
