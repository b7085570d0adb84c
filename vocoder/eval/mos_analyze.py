"""Analysis of MOS listening-test ratings: validation against the key, listener screening on the gold items,
per-system MOS with t-based and two-way bootstrap 95% intervals, pairwise tests with Holm correction.
`vocoder.eval.mos_report` turns the result into files."""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from vocoder.errors import VocoderError
from vocoder.eval.stats import holm, mean_ci, two_way_bootstrap_ci

RATING_COLUMNS = (
    "package",
    "listener",
    "session",
    "playlist",
    "trial",
    "stimulus_id",
    "score",
    "response_time_ms",
    "plays",
)
REFERENCE_FAIL_MAX = 2
ANCHOR_FAIL_MIN = 4
RATED_KINDS = ("test", "gold_reference", "gold_anchor")  # familiarisation items are not rated
PAGE_CONFIG = re.compile(r'<script id="mos-config" type="application/json">(.*?)</script>', re.DOTALL)


class RatingsError(VocoderError):
    """A ratings file, key or package that cannot be read or does not belong to this test."""


@dataclass(frozen=True)
class Rating:
    """One trial of one listener, joined with what the key says the stimulus is."""

    listener: str
    session: str
    stimulus_id: str
    score: int
    response_time_ms: int
    plays: int
    kind: str
    system: str
    utterance: str


@dataclass(frozen=True)
class Screening:
    """Per-listener outcome of the screening; `reasons` is empty for accepted listeners."""

    listener: str
    trials: int
    reference_scores: list[int]
    anchor_scores: list[int]
    test_sd: float
    reasons: list[str]


def load_key(path: Path) -> dict:
    """The unblinding key written by `mos export`."""
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RatingsError(f"{path}: cannot read the key: {error}") from None
    if not isinstance(key, dict) or not {"package_id", "stimuli", "systems"} <= key.keys():
        raise RatingsError(f"{path}: not a MOS key (expected package_id, stimuli and systems)")
    return key


def check_package(package: Path, key: dict, key_path: Path) -> None:
    """The package's embedded playlists must come from the same export as the key."""
    page = package / "index.html"
    try:
        match = PAGE_CONFIG.search(page.read_text(encoding="utf-8"))
    except OSError as error:
        raise RatingsError(f"{page}: cannot read the test page: {error}") from None
    if not match:
        raise RatingsError(f"{page}: no embedded test configuration; is this a `vocoder mos export` package?")
    try:
        config = json.loads(match.group(1))
    except json.JSONDecodeError as error:
        raise RatingsError(f"{page}: the embedded test configuration is not valid JSON: {error}") from None
    if config.get("package_id") != key["package_id"]:
        raise RatingsError(
            f"{key_path} is the key of package {key['package_id']}, but {page} is package {config.get('package_id')}"
        )


def _integer(text: str, field: str, low: int, high: float, where: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise RatingsError(f"{where}: {field} {text!r} is not an integer") from None
    if not low <= value <= high:
        raise RatingsError(f"{where}: {field} {value} is outside {low}..{high}")
    return value


def read_ratings(paths: list[Path], key: dict) -> tuple[list[Rating], int]:
    """All trials from the downloaded CSV files, validated against the key.

    A listener who rated the same stimulus more than once (e.g. a restarted session) keeps the first rating;
    the number of such dropped repeats is returned.
    """
    stimuli = key["stimuli"]
    ratings: list[Rating] = []
    seen: set[tuple[str, str]] = set()
    repeats = 0
    for path in paths:
        try:
            handle = path.open(newline="", encoding="utf-8")
        except OSError as error:
            raise RatingsError(f"{path}: cannot read ratings: {error}") from None
        with handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(header) != RATING_COLUMNS:
                raise RatingsError(f"{path}:1: expected the header {','.join(RATING_COLUMNS)}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row:
                    continue
                if len(row) != len(RATING_COLUMNS):
                    raise RatingsError(f"{where}: expected {len(RATING_COLUMNS)} fields, found {len(row)}")
                fields = dict(zip(RATING_COLUMNS, row, strict=True))
                if fields["package"] != key["package_id"]:
                    raise RatingsError(
                        f"{where}: package {fields['package']!r} is not this test's ({key['package_id']})"
                    )
                stimulus = stimuli.get(fields["stimulus_id"])
                if stimulus is None or stimulus["kind"] not in RATED_KINDS:
                    raise RatingsError(f"{where}: stimulus_id {fields['stimulus_id']!r} is not a rated item of the key")
                if not fields["listener"].strip():
                    raise RatingsError(f"{where}: listener is empty")
                rating = Rating(
                    listener=fields["listener"].strip(),
                    session=fields["session"],
                    stimulus_id=fields["stimulus_id"],
                    score=_integer(fields["score"], "score", 1, 5, where),
                    response_time_ms=_integer(fields["response_time_ms"], "response_time_ms", 0, math.inf, where),
                    plays=_integer(fields["plays"], "plays", 1, math.inf, where),
                    kind=stimulus["kind"],
                    system=stimulus["system"],
                    utterance=stimulus["utterance"],
                )
                if (rating.listener, rating.stimulus_id) in seen:
                    repeats += 1
                    continue
                seen.add((rating.listener, rating.stimulus_id))
                ratings.append(rating)
    if not ratings:
        raise RatingsError("the ratings files hold no trials")
    return ratings, repeats


def screen(ratings: list[Rating]) -> list[Screening]:
    """Fail listeners who rated the natural reference <= 2 or the low anchor >= 4, or gave every test item the
    same score (no variance: not listening, or not using the scale)."""
    by_listener: dict[str, list[Rating]] = defaultdict(list)
    for rating in ratings:
        by_listener[rating.listener].append(rating)
    results = []
    for listener, own in sorted(by_listener.items()):
        reference = [r.score for r in own if r.kind == "gold_reference"]
        anchor = [r.score for r in own if r.kind == "gold_anchor"]
        test = [r.score for r in own if r.kind == "test"]
        sd = float(np.std(test, ddof=1)) if len(test) > 1 else math.nan
        reasons = []
        if any(score <= REFERENCE_FAIL_MAX for score in reference):
            reasons.append(f"rated the natural reference <= {REFERENCE_FAIL_MAX}")
        if any(score >= ANCHOR_FAIL_MIN for score in anchor):
            reasons.append(f"rated the low anchor >= {ANCHOR_FAIL_MIN}")
        if len(test) > 1 and sd == 0:
            reasons.append("the same score for every test item")
        results.append(Screening(listener, len(own), reference, anchor, sd, reasons))
    return results


@dataclass(frozen=True)
class SystemSummary:
    """The MOS of one condition over the accepted listeners."""

    system: str
    listeners: int
    ratings: int
    mos: float
    sd: float
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float


def summarise(ratings: list[Rating], system: str, bootstrap: int, rng: np.random.Generator) -> SystemSummary:
    """MOS, SD, t-interval over ratings, and the two-way (listener x utterance) bootstrap interval."""
    scores = [r.score for r in ratings]
    summary = mean_ci(scores)
    boot_low, boot_high = two_way_bootstrap_ci(
        [r.listener for r in ratings], [r.utterance for r in ratings], scores, rng, bootstrap
    )
    return SystemSummary(
        system,
        len({r.listener for r in ratings}),
        summary.n,
        summary.mean,
        summary.sd,
        summary.low,
        summary.high,
        boot_low,
        boot_high,
    )


@dataclass(frozen=True)
class Comparison:
    """One pairwise test between two systems."""

    first: str
    second: str
    test: str
    n: int
    difference: float
    p: float
    p_holm: float


def listener_means(ratings: list[Rating]) -> dict[str, float]:
    """Each listener's mean score: the unit of the paired test, so listeners weigh equally."""
    scores: dict[str, list[int]] = defaultdict(list)
    for rating in ratings:
        scores[rating.listener].append(rating.score)
    return {listener: float(np.mean(values)) for listener, values in scores.items()}


def compare(by_system: dict[str, list[Rating]]) -> list[Comparison]:
    """Wilcoxon signed-rank on per-listener means when at least two listeners, and at least half of those who
    rated either system, rated both (within-listener design); otherwise Mann-Whitney U on the ratings. Holm
    corrects over all pairs."""
    raw = []
    for first, second in itertools.combinations(sorted(by_system), 2):
        means_a, means_b = listener_means(by_system[first]), listener_means(by_system[second])
        shared = sorted(set(means_a) & set(means_b))
        if len(shared) >= 2 and 2 * len(shared) >= len(set(means_a) | set(means_b)):
            a = np.array([means_a[listener] for listener in shared])
            b = np.array([means_b[listener] for listener in shared])
            p = 1.0 if np.all(a == b) else float(stats.wilcoxon(a, b).pvalue)
            raw.append((first, second, "Wilcoxon signed-rank", len(shared), float(np.mean(a - b)), p))
        else:
            a = np.array([r.score for r in by_system[first]])
            b = np.array([r.score for r in by_system[second]])
            p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
            raw.append((first, second, "Mann-Whitney U", a.size + b.size, float(a.mean() - b.mean()), p))
    adjusted = holm([entry[-1] for entry in raw])
    return [Comparison(*entry, p_holm) for entry, p_holm in zip(raw, adjusted, strict=True)]


@dataclass(frozen=True)
class MosAnalysis:
    """Everything the reports show; `summaries` is empty when no test rating survives screening."""

    package_id: str
    files: int
    trials: int
    repeats: int
    bootstrap: int
    screening: list[Screening]
    summaries: list[SystemSummary]
    gold: list[SystemSummary]
    comparisons: list[Comparison]


def analyze(
    package: Path, key_path: Path, rating_paths: list[Path], bootstrap: int = 2000, seed: int = 0
) -> MosAnalysis:
    """Validate, screen, then summarise each system and compare every pair over the accepted listeners."""
    key = load_key(key_path)
    check_package(package, key, key_path)
    ratings, repeats = read_ratings(rating_paths, key)
    screening = screen(ratings)
    rejected = {s.listener for s in screening if s.reasons}
    accepted = [r for r in ratings if r.listener not in rejected]
    rng = np.random.default_rng(seed)
    by_system: dict[str, list[Rating]] = defaultdict(list)
    for rating in accepted:
        if rating.kind == "test":
            by_system[rating.system].append(rating)
    order = [name for name in key["systems"] if name in by_system]
    gold = {
        label: [r for r in accepted if r.kind == kind]
        for label, kind in (("natural reference (gold)", "gold_reference"), ("low anchor (gold)", "gold_anchor"))
    }
    return MosAnalysis(
        package_id=key["package_id"],
        files=len(rating_paths),
        trials=len(ratings),
        repeats=repeats,
        bootstrap=bootstrap,
        screening=screening,
        summaries=[summarise(by_system[name], name, bootstrap, rng) for name in order],
        gold=[summarise(items, label, bootstrap, rng) for label, items in gold.items() if items],
        comparisons=compare({name: by_system[name] for name in order}),
    )
