"""Objective metrics: identities, invariances, the MCD constant against a direct log-spectral distance, and the
summary statistics against scipy."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats

from tests.eval_synthetic import RATE, low_passed, utterance
from vocoder.errors import VocoderError
from vocoder.eval import metrics
from vocoder.eval.stats import holm, mean_ci, two_way_bootstrap_ci


def _envelope_from_mcep(coefficients: np.ndarray, alpha: float, bins: int = 513) -> np.ndarray:
    """A power envelope on the linear axis whose log, on the warped axis, is 2 * sum_d c_d cos(d w~)."""
    linear = np.linspace(0, np.pi, bins)
    warped = linear + 2 * np.arctan(alpha * np.sin(linear) / (1 - alpha * np.cos(linear)))
    orders = np.arange(1, coefficients.size + 1)
    return np.exp(2 * np.cos(np.outer(warped, orders)) @ coefficients)[None, :]


def test_mel_cepstrum_recovers_known_coefficients_and_mcd_is_the_log_spectral_distance() -> None:
    rng = np.random.default_rng(1)
    alpha = metrics.MCEP_ALPHA[RATE]
    first, second = (0.3 * rng.standard_normal(metrics.MCEP_ORDER) / np.arange(1, 25) for _ in range(2))
    env_a, env_b = _envelope_from_mcep(first, alpha), _envelope_from_mcep(second, alpha)
    recovered = metrics.mel_cepstrum(env_a, RATE)[0]
    np.testing.assert_allclose(recovered, first, atol=2e-3)
    mcd = metrics.MCD_CONSTANT * math.sqrt(np.sum((recovered - metrics.mel_cepstrum(env_b, RATE)[0]) ** 2))
    # Parseval: the RMS over the warped axis of the dB difference of the two power envelopes.
    warped = np.linspace(0, np.pi, 4097)
    orders = np.arange(1, 25)
    db = 10 / math.log(10) * 2 * np.cos(np.outer(warped, orders)) @ (first - second)
    assert mcd == pytest.approx(math.sqrt(np.mean(db**2)), rel=0.01)


def test_spectral_f0_scores_identity_gain_invariance_and_degradation() -> None:
    wav = utterance(0)
    same = metrics.spectral_f0_scores(wav, wav, RATE)
    assert (same.mcd_db, same.f0_rmse_cents, same.vuv_error) == (0.0, 0.0, 0.0)
    quieter = metrics.spectral_f0_scores(wav, 0.5 * wav, RATE)
    assert quieter.mcd_db < 0.2  # a gain only moves c0, which MCD leaves out
    muffled = metrics.spectral_f0_scores(wav, low_passed(wav, 1000.0), RATE)
    assert muffled.mcd_db > 3.0


def test_f0_rmse_measures_a_semitone_shift_in_cents() -> None:
    base = utterance(1, f0=140.0)
    shifted = utterance(1, f0=140.0 * 2 ** (1 / 12))
    scores = metrics.spectral_f0_scores(base, shifted, RATE)
    assert scores.f0_rmse_cents == pytest.approx(100.0, abs=20.0)
    assert scores.vuv_error < 0.2


def test_a_reference_scored_against_several_systems_is_analysed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Harvest, most of a score's time, runs once for the reference of several systems, with the same scores."""
    reference, clean, muffled = utterance(2), utterance(2) * 0.5, low_passed(utterance(2), 1000.0)
    uncached = [metrics.spectral_f0_scores(reference, system, RATE) for system in (clean, muffled)]
    analysed: list[int] = []
    harvest = metrics.pyworld.harvest

    def counted(x: np.ndarray, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        analysed.append(len(x))
        return harvest(x, *args, **kwargs)

    monkeypatch.setattr(metrics.pyworld, "harvest", counted)
    metrics._world_analysis.cache_clear()
    assert [metrics.spectral_f0_scores(reference, system, RATE) for system in (clean, muffled)] == uncached
    assert len(analysed) == 3  # the reference, then each system


def test_intrusive_metrics_rank_clean_above_degraded() -> None:
    wav = utterance(2)
    muffled = low_passed(wav, 1000.0)
    assert metrics.pesq_wb(wav, wav) > 4.0 > metrics.pesq_wb(wav, muffled)
    assert metrics.stoi(wav, wav) == pytest.approx(1.0, abs=1e-6)
    assert metrics.mrstft_distance(wav, wav) == 0.0
    assert metrics.mrstft_distance(wav, muffled) > metrics.mrstft_distance(wav, 0.99 * wav) > 0.0


def test_dnsmos_gives_p835_scores_on_a_short_clip() -> None:
    scores = metrics.dnsmos(utterance(3))
    assert set(scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert all(1.0 <= value <= 5.0 for value in scores.values())


def test_unsupported_sample_rate_is_a_user_error() -> None:
    with pytest.raises(VocoderError, match="11025 Hz"):
        metrics.mcep_alpha(11025)


def test_mean_ci_matches_scipy_t_interval() -> None:
    data = np.random.default_rng(4).normal(3.5, 0.8, 37)
    summary = mean_ci([*data, math.nan])
    low, high = stats.t.interval(0.95, data.size - 1, loc=data.mean(), scale=stats.sem(data))
    assert summary.n == data.size
    assert (summary.low, summary.high) == pytest.approx((low, high))
    assert summary.sd == pytest.approx(np.std(data, ddof=1))


def test_holm_matches_the_textbook_step_down() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.04, 0.06) = 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def reference_two_way_ci(
    listeners: list[str], utterances: list[str], scores: np.ndarray, rng: np.random.Generator, repeats: int
) -> tuple[float, float]:
    """The two-way bootstrap by its definition, written out: draw listeners and utterances with replacement (ids
    in sorted order, listeners first, as the library draws them), pool every rating of each drawn (listener,
    utterance) pair once per time the pair was drawn, take the mean; the 2.5th and 97.5th percentiles."""
    listener_ids, utterance_ids = sorted(set(listeners)), sorted(set(utterances))
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for listener, spoken, score in zip(listeners, utterances, scores, strict=True):
        cells[listener, spoken].append(float(score))
    means = []
    for _ in range(repeats):
        drawn_listeners = [listener_ids[i] for i in rng.integers(0, len(listener_ids), len(listener_ids))]
        drawn_utterances = [utterance_ids[i] for i in rng.integers(0, len(utterance_ids), len(utterance_ids))]
        pooled = [s for lis in drawn_listeners for utt in drawn_utterances for s in cells.get((lis, utt), [])]
        if pooled:
            means.append(sum(pooled) / len(pooled))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def listener_panel() -> tuple[list[str], list[str], np.ndarray]:
    """8 listeners x 10 utterances whose scores carry a strong listener offset (sd 1.0) and little noise (0.2)."""
    rng = np.random.default_rng(5)
    listeners = [f"L{i}" for i in range(8) for _ in range(10)]
    utterances = [f"u{j}" for _ in range(8) for j in range(10)]
    offsets = np.repeat(rng.normal(0, 1.0, 8), 10)
    return listeners, utterances, 3.0 + offsets + rng.normal(0, 0.2, 80)


def test_two_way_bootstrap_equals_its_definition_and_its_width_is_the_panels() -> None:
    """Not only a bracket around the mean: the interval equals the written-out resampling under the same seed,
    and its width is what the listener panel's spread predicts (the listener effect dominates here)."""
    listeners, utterances, scores = listener_panel()
    low, high = two_way_bootstrap_ci(listeners, utterances, scores, np.random.default_rng(0), repeats=1000)
    expected = reference_two_way_ci(listeners, utterances, scores, np.random.default_rng(0), 1000)
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    # The bootstrap SD of a mean over 8 resampled listeners is sd(listener means) * sqrt(7/8) / sqrt(8); the
    # utterance draw adds little (0.2 noise). A 95% percentile interval is about 3.92 of those SDs wide.
    listener_means = scores.reshape(8, 10).mean(axis=1)
    predicted = 3.92 * listener_means.std(ddof=1) * math.sqrt(7 / 8) / math.sqrt(8)
    assert 0.8 * predicted < high - low < 1.25 * predicted, (high - low, predicted)


def test_two_way_bootstrap_widens_with_listener_effects() -> None:
    listeners, utterances, scores = listener_panel()
    low, high = two_way_bootstrap_ci(listeners, utterances, scores, np.random.default_rng(0), repeats=1000)
    naive = mean_ci(scores)
    assert low < scores.mean() < high
    assert high - low > 1.5 * (naive.high - naive.low)  # ratings of one listener are not independent
