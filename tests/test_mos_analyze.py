"""`vocoder mos analyze`: screening, MOS and intervals, pairwise tests checked against scipy on simulated panels,
and malformed ratings files."""

from __future__ import annotations

import csv
import itertools
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from tests.eval_synthetic import write_corpus
from tests.test_eval_metrics import reference_two_way_ci
from vocoder.cli.app import app
from vocoder.eval.mos_analyze import RATING_COLUMNS, RatingsError, analyze
from vocoder.eval.mos_export import export_package
from vocoder.eval.mos_report import analyze_and_report

QUALITY = {"copy": 4.4, "lowpass": 3.2, "mulaw": 2.1}
Rater = Callable[[dict, np.random.Generator], int]


def honest(stimulus: dict, rng: np.random.Generator) -> int:
    if stimulus["kind"] == "gold_reference":
        return 5
    if stimulus["kind"] == "gold_anchor":
        return 1
    return int(np.clip(round(QUALITY[stimulus["system"]] + rng.normal(0, 0.7)), 1, 5))


def write_ratings(path: Path, key: dict, listener: str, playlist: int, rater: Rater, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    trials = key["playlists"][playlist - 1]["trials"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RATING_COLUMNS)
        for number, stimulus_id in enumerate(trials, start=1):
            score = rater(key["stimuli"][stimulus_id], rng)
            writer.writerow([key["package_id"], listener, f"s{seed}", playlist, number, stimulus_id, score, 900, 1])
    return path


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, list[Path]]:
    """Three systems, four utterances, six honest listeners and three who fail screening in different ways."""
    root = tmp_path_factory.mktemp("panel")
    dirs = write_corpus(root, count=4, seconds=0.6)
    shutil.copytree(dirs["reference"], root / "copy")
    systems = [("copy", root / "copy"), ("lowpass", dirs["lowpass"]), ("mulaw", dirs["mulaw"])]
    key = export_package(dirs["reference"], systems, root / "pkg", listeners=9, gold_per_kind=1, seed=3)
    files = [write_ratings(root / f"good{i}.csv", key, f"good{i}", i + 1, honest, i) for i in range(6)]
    files.append(write_ratings(root / "flat.csv", key, "flat", 7, lambda s, r: 3, 7))
    files.append(
        write_ratings(
            root / "deaf.csv",
            key,
            "deaf",
            8,
            lambda s, r: 1 if s["kind"] == "gold_reference" else 3 + (s["system"] == "copy"),
            8,
        )
    )
    files.append(
        write_ratings(
            root / "wild.csv", key, "wild", 9, lambda s, r: int(r.integers(1, 6)) if s["kind"] == "test" else 5, 9
        )
    )
    return root / "pkg", root / "pkg.key.json", key, files


def test_analysis_matches_scipy_on_a_simulated_panel(
    panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path
) -> None:
    package, key_path, key, files = panel
    result = CliRunner().invoke(
        app,
        [
            "mos",
            "analyze",
            "--test",
            str(package),
            "--key",
            str(key_path),
            "--ratings",
            *map(str, files),
            "--out",
            str(tmp_path / "report"),
            "--bootstrap",
            "500",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 listener(s) excluded" in result.output
    screening = (tmp_path / "report" / "screening.md").read_text()
    assert "| flat |" in screening and "same score for every test item" in screening
    assert "natural reference <= 2" in screening.split("| deaf |")[1].splitlines()[0]
    assert "low anchor >= 4" in screening.split("| wild |")[1].splitlines()[0]
    for name in ("report.md", "report.html", "mos.png", "summary.csv", "pairwise.csv"):
        assert (tmp_path / "report" / name).stat().st_size > 0

    # Independent recomputation from the raw files of the accepted listeners.
    scores: dict[str, list[int]] = defaultdict(list)
    per_listener: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    rated: dict[str, list[tuple[str, str]]] = defaultdict(list)  # (listener, utterance) of each test rating
    for path in files[:6]:
        for row in csv.DictReader(path.open()):
            stimulus = key["stimuli"][row["stimulus_id"]]
            if stimulus["kind"] == "test":
                scores[stimulus["system"]].append(int(row["score"]))
                per_listener[stimulus["system"]][row["listener"]].append(int(row["score"]))
                rated[stimulus["system"]].append((row["listener"], stimulus["utterance"]))
    summary = {row["system"]: row for row in csv.DictReader((tmp_path / "report" / "summary.csv").open())}
    for system, values in scores.items():
        data = np.array(values, dtype=float)
        low, high = stats.t.interval(0.95, data.size - 1, loc=data.mean(), scale=stats.sem(data))
        row = summary[system]
        assert int(row["ratings"]) == data.size and int(row["listeners"]) == 6
        assert float(row["mos"]) == pytest.approx(data.mean())
        assert (float(row["t_low"]), float(row["t_high"])) == pytest.approx((low, high))
        assert float(row["boot_low"]) < data.mean() < float(row["boot_high"])
    # The bootstrap interval is the written-out resampling under the analysis' seed (0; systems in key order,
    # one generator for all), not only some bracket around the mean.
    rng = np.random.default_rng(0)
    for system in (name for name in key["systems"] if name in scores):
        listeners, utterances = (list(column) for column in zip(*rated[system], strict=True))
        expected = reference_two_way_ci(listeners, utterances, np.array(scores[system], float), rng, 500)
        row = summary[system]
        assert (float(row["boot_low"]), float(row["boot_high"])) == pytest.approx(expected, rel=1e-12)
        # The honest listeners share no offset: listener resampling adds little to the rating noise, so the
        # two-way interval is about as wide as the t-interval (measured 1.0x to 1.2x), bounded at 0.8x to 1.5x.
        t_width = float(row["t_high"]) - float(row["t_low"])
        assert 0.8 * t_width < expected[1] - expected[0] < 1.5 * t_width, (system, expected, t_width)
    assert float(summary["natural reference (gold)"]["mos"]) == 5.0

    pairwise = list(csv.DictReader((tmp_path / "report" / "pairwise.csv").open()))
    raw = []
    for first, second in itertools.combinations(sorted(scores), 2):
        shared = sorted(set(per_listener[first]) & set(per_listener[second]))
        a = [np.mean(per_listener[first][listener]) for listener in shared]
        b = [np.mean(per_listener[second][listener]) for listener in shared]
        raw.append(stats.wilcoxon(a, b).pvalue)
    order = np.argsort(raw)
    holm = np.maximum.accumulate([min(1.0, (len(raw) - rank) * raw[i]) for rank, i in enumerate(order)])
    expected_holm = dict(zip(order, holm, strict=True))
    for index, row in enumerate(pairwise):
        assert row["test"] == "Wilcoxon signed-rank"
        assert float(row["p"]) == pytest.approx(raw[index])
        assert float(row["p_holm"]) == pytest.approx(expected_holm[index])


def test_unpaired_design_uses_mann_whitney(tmp_path: Path) -> None:
    dirs = write_corpus(tmp_path, count=2, seconds=0.6)
    systems = [("lowpass", dirs["lowpass"]), ("mulaw", dirs["mulaw"])]
    key = export_package(
        dirs["reference"],
        systems,
        tmp_path / "pkg",
        items_per_listener=1,
        listeners=8,
        gold_per_kind=1,
        familiarisation=0,
    )
    files = [write_ratings(tmp_path / f"r{i}.csv", key, f"L{i}", i + 1, honest, i) for i in range(8)]
    result = analyze_and_report(tmp_path / "pkg", tmp_path / "pkg.key.json", files, tmp_path / "report", bootstrap=200)
    (comparison,) = result.comparisons
    by_system: dict[str, list[int]] = defaultdict(list)
    for path in files:
        for row in csv.DictReader(path.open()):
            stimulus = key["stimuli"][row["stimulus_id"]]
            if stimulus["kind"] == "test":
                by_system[stimulus["system"]].append(int(row["score"]))
    assert comparison.test == "Mann-Whitney U"
    expected = stats.mannwhitneyu(by_system["lowpass"], by_system["mulaw"], alternative="two-sided").pvalue
    assert comparison.p == pytest.approx(expected)


def _corrupt(path: Path, line: int, column: str, value: str) -> None:
    rows = list(csv.reader(path.open()))
    rows[line - 1][RATING_COLUMNS.index(column)] = value
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("score", "6", "score 6 is outside 1..5"),
        ("score", "good", "score 'good' is not an integer"),
        ("stimulus_id", "deadbeef0000", "'deadbeef0000' is not a rated item"),
        ("package", "0000ffff", "not this test's"),
        ("plays", "0", "plays 0 is outside"),
        ("listener", "  ", "listener is empty"),
    ],
)
def test_malformed_ratings_name_file_and_line(
    panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path, column: str, value: str, message: str
) -> None:
    package, key_path, _, files = panel
    broken = tmp_path / "broken.csv"
    shutil.copy(files[0], broken)
    _corrupt(broken, 3, column, value)
    with pytest.raises(RatingsError, match=f"broken.csv:3: .*{message}"):
        analyze_and_report(package, key_path, [files[1], broken], tmp_path / "report")


def test_wrong_header_and_foreign_key_are_errors(panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path) -> None:
    package, key_path, key, files = panel
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("".join(files[0].read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(RatingsError, match="headerless.csv:1: expected the header"):
        analyze_and_report(package, key_path, [headerless], tmp_path / "report")
    other = tmp_path / "other.key.json"
    other.write_text(key_path.read_text().replace(key["package_id"], "12345678"))
    with pytest.raises(RatingsError, match="key of package 12345678"):
        analyze_and_report(package, other, files, tmp_path / "report")


def test_when_every_listener_fails_the_screening_report_is_still_written(
    panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path
) -> None:
    package, key_path, _, files = panel
    with pytest.raises(RatingsError, match=r"no test ratings remain after screening \(3 listener"):
        analyze_and_report(package, key_path, files[6:], tmp_path / "report")
    assert "| wild |" in (tmp_path / "report" / "screening.md").read_text()
    assert not (tmp_path / "report" / "report.md").exists()


def test_a_repeated_rating_keeps_the_first_and_is_counted(
    panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path
) -> None:
    """A listener who rated a stimulus twice (a restarted session, a file sent twice) counts once: the first."""
    package, key_path, _, files = panel
    lines = files[0].read_text().splitlines(keepends=True)
    again = tmp_path / "again.csv"
    rerated = lines[1].split(",")
    rerated[RATING_COLUMNS.index("score")] = "1" if rerated[RATING_COLUMNS.index("score")] != "1" else "5"
    again.write_text(lines[0] + ",".join(rerated) + "".join(lines[2:4]))
    base = analyze(package, key_path, files[:6], bootstrap=100)
    doubled = analyze(package, key_path, [*files[:6], again, files[0]], bootstrap=100)
    assert base.repeats == 0 and doubled.repeats == 3 + len(lines) - 1  # again.csv's 3 rows, then all of files[0]
    assert doubled.trials == base.trials
    assert [(s.system, s.mos, s.ratings) for s in doubled.summaries] == [
        (s.system, s.mos, s.ratings) for s in base.summaries
    ]


def test_an_unreadable_or_foreign_key_is_one_clear_error(
    panel: tuple[Path, Path, dict, list[Path]], tmp_path: Path
) -> None:
    package, _, _, files = panel
    missing = tmp_path / "missing.key.json"
    with pytest.raises(RatingsError, match=r"missing.key.json: cannot read the key: \[Errno 2\]"):
        analyze(package, missing, files)
    garbled = tmp_path / "garbled.key.json"
    garbled.write_text('{"package_id": "1234"')
    with pytest.raises(RatingsError, match="garbled.key.json: cannot read the key: Expecting"):
        analyze(package, garbled, files)
    listed = tmp_path / "listed.key.json"
    listed.write_text("[1, 2]")
    with pytest.raises(RatingsError, match="listed.key.json: not a MOS key"):
        analyze(package, listed, files)
