"""Summary statistics shared by the objective and the listening-test reports: means with confidence intervals,
a two-way (listener x utterance) bootstrap, and Holm's step-down correction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanCI:
    """Mean, standard deviation and a t-based 95% interval of the finite values; NaN fields when n < 2."""

    n: int
    mean: float
    sd: float
    low: float
    high: float


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> MeanCI:
    """Student-t interval of the mean: mean +- t(level, n-1) * sd / sqrt(n); NaN values are ignored."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n < 2:
        return MeanCI(n, mean, math.nan, math.nan, math.nan)
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, sd, mean - half, mean + half)


def two_way_bootstrap_ci(
    listeners: Sequence[str],
    utterances: Sequence[str],
    scores: Sequence[float],
    rng: np.random.Generator,
    repeats: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean score when both listeners and utterances are resampled with replacement.

    A rating enters a replicate once for every time its listener and its utterance were both drawn, so the
    interval reflects the variability of the listener panel and of the sentence set, not only rating noise.
    """
    listener_ids, listener_of = np.unique(np.asarray(listeners), return_inverse=True)
    utterance_ids, utterance_of = np.unique(np.asarray(utterances), return_inverse=True)
    values = np.asarray(scores, dtype=np.float64)
    means = np.empty(repeats)
    for index in range(repeats):
        listener_weight = np.bincount(
            rng.integers(0, listener_ids.size, listener_ids.size), minlength=listener_ids.size
        )
        utterance_weight = np.bincount(
            rng.integers(0, utterance_ids.size, utterance_ids.size), minlength=utterance_ids.size
        )
        weight = listener_weight[listener_of] * utterance_weight[utterance_of]
        total = weight.sum()
        means[index] = (weight @ values) / total if total else np.nan
    means = means[np.isfinite(means)]  # replicates whose listeners rated none of their utterances
    if means.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, made monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
