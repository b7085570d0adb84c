"""`vocoder bench quality`: copy synthesis of held-out recordings, scored beside Griffin-Lim and the mu-law ceiling.

For each held-out utterance of each feature cache (one cache per source), every system rebuilds the recording from
the same features: each model through `Vocoder.synthesize_batch` (a source's utterances as one batch, as a user's
`extract` + `synthesize` of several files would), Griffin-Lim from the mel (librosa's mel inversion, 64 iterations
by default; from the recording's mel where a model reads none, e.g. the TTS model's linguistic features), and the
8-bit mu-law re-quantisation of the recording itself, the ceiling of any mu-law WaveNet. Every system is scored as
it is written and heard: clipped to full scale (`full_scale`). A model that reads F0 the cache lacks (a
harmonic-source student on a mel-only cache) gets the recording's (`model_features`). All are scored in the same run
with the same metrics (PESQ-WB, STOI, MCD, DNSMOS OVRL; `vocoder.eval.metrics`), so each model is reported as a
ratio to Griffin-Lim and to the ceiling measured beside it, per source and over all sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import scipy.signal
import torch
from tqdm import tqdm

from vocoder.api import Vocoder
from vocoder.audio import full_scale, load_wav, mu_law_decode, mu_law_encode, save_wav
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache
from vocoder.errors import VocoderError
from vocoder.eval import metrics
from vocoder.eval.plots import spectrogram_comparison
from vocoder.features.acoustic import f0_features, log_mel
from vocoder.features.featurefile import Features, read_features
from vocoder.features.level import scaled
from vocoder.vocabulary import F0_ARRAYS

GRIFFIN_LIM = "griffin-lim"
CEILING = "mu-law-ceiling"
METRICS = ("pesq_wb", "stoi", "mcd_db", "dnsmos_ovrl", "vuv_error")
HIGHER_IS_BETTER = {"pesq_wb": True, "stoi": True, "mcd_db": False, "dnsmos_ovrl": True, "vuv_error": False}
SCORES = (*METRICS, "voiced")
"""What is averaged per system: the metrics (each also a ratio to Griffin-Lim and the ceiling) and the share of the
system's speech frames that are voiced, which has no better direction: it should match the recording's."""


@dataclass(frozen=True)
class QualitySettings:
    split: str = "test"
    limit: int = 8  # utterances per source, evenly spread over the sorted held-out ids
    seed: int = 0
    griffin_lim_iterations: int = 64
    with_dnsmos: bool = True
    spectrograms: int = 2  # per source
    gain_db: float = 0.0  # every recording scaled by this before copy synthesis, its mel moved to match
    tilt: float = 0.0  # every recording coloured by `coloured` (another microphone), its features re-extracted


def held_out(cache_dir: Path, split: str, limit: int) -> list[str]:
    """`limit` ids of the cache's `split`, evenly spread over the sorted ids (the same on every machine)."""
    rows = sorted(row.id for row in FeatureCache(cache_dir).read_manifest().values() if row.split == split)
    if not rows:
        raise VocoderError(f"{cache_dir}: no '{split}' utterances in its manifest (build it with `vocoder preprocess`)")
    if len(rows) <= limit:
        return rows
    return [rows[round(i * (len(rows) - 1) / (limit - 1))] for i in range(limit)] if limit > 1 else rows[:1]


def griffin_lim(log_mel: np.ndarray, config: Config, iterations: int, samples: int, seed: int) -> np.ndarray:
    """The waveform librosa's mel inversion and Griffin-Lim find for `[frames, n_mels]` natural-log magnitudes with
    `config`'s STFT settings; `seed` fixes the random initial phases, so the baseline repeats from run to run."""
    features, rate = config.features, config.audio.sample_rate
    magnitudes = librosa.feature.inverse.mel_to_stft(
        np.exp(log_mel).T, sr=rate, n_fft=features.n_fft, power=1.0, fmin=features.fmin, fmax=features.fmax
    )
    wav = librosa.griffinlim(
        magnitudes,
        n_iter=iterations,
        hop_length=features.hop_length,
        win_length=features.win_length,
        center=True,
        random_state=seed,
    )
    wav = np.pad(wav[:samples], (0, max(0, samples - len(wav))))  # frames * hop samples, like the recording
    return full_scale(wav).astype(np.float32)


def griffin_lim_mel(features: Features, reference: np.ndarray, config: Config) -> np.ndarray:
    """The mel Griffin-Lim inverts: the cache's own, or for a model that reads no mel (the TTS model's linguistic
    features) the recording's, with that model's STFT settings, so Griffin-Lim is still the baseline of the run."""
    if features.mel is not None:
        return features.mel
    return log_mel(reference, config.audio.sample_rate, config.features)


def model_features(vocoder: Vocoder, features: Features, reference: np.ndarray) -> Features:
    """What `vocoder` reads of an utterance: the cache's file, and where the model reads F0 that the file lacks (a
    harmonic-source student, or a teacher sampling by voicing, on a mel-only cache, e.g. one built with `--config
    real_teacher`) the recording's, measured with the model's settings as `vocoder extract --model` would: every
    model scored on the same recordings."""
    read = set(F0_ARRAYS) & set(vocoder.config.extracted_arrays())
    if all(getattr(features, name) is not None for name in read):
        return features
    lf0, vuv = f0_features(reference, vocoder.sample_rate, vocoder.config.features)
    return replace(features, lf0=lf0, vuv=vuv)


def coloured(recording: np.ndarray, tilt: float) -> np.ndarray:
    """The recording through the first-order tilt 1 - tilt z^-1 (positive: brighter, negative: darker; 0.5 moves the
    spectrum's ends 9.5 dB apart), brought back to its own peak: a stand-in for another microphone or room, which
    the training corpus's own augmentation only partly covers."""
    if not -1 < tilt < 1:
        raise VocoderError(f"bench quality: the tilt must lie strictly between -1 and 1, found {tilt}")
    filtered = scipy.signal.lfilter([1.0, -tilt], [1.0], recording)
    return (filtered * (np.abs(recording).max() / max(np.abs(filtered).max(), 1e-9))).astype(np.float32)


def reextracted(features: Features, recording: np.ndarray, config: Config) -> Features:
    """The cache's features of an utterance with every acoustic array they hold measured again on `recording` (as
    `vocoder extract` would find them): for a recording the benchmark altered in more than its level."""
    mel = log_mel(recording, config.audio.sample_rate, config.features) if features.mel is not None else None
    if features.lf0 is None:
        return replace(features, mel=mel)
    lf0, vuv = f0_features(recording, config.audio.sample_rate, config.features)
    return replace(features, mel=mel, lf0=lf0, vuv=vuv)


def mu_law_ceiling(reference: np.ndarray, mu: int) -> np.ndarray:
    """The recording re-quantised to the model's mu-law classes: what a perfect mu-law WaveNet would output."""
    return mu_law_decode(mu_law_encode(torch.from_numpy(reference), mu), mu).numpy()


def score(reference: np.ndarray, system: np.ndarray, rate: int, with_dnsmos: bool) -> dict[str, float]:
    """The benchmark's metrics of one system waveform against its reference (both at `rate` = 16 kHz)."""
    system = system[: len(reference)]
    spectral = metrics.spectral_f0_scores(reference, system, rate)
    return {
        "pesq_wb": metrics.pesq_wb(reference, system),
        "stoi": metrics.stoi(reference, system),
        "mcd_db": spectral.mcd_db,
        "dnsmos_ovrl": metrics.dnsmos(system)["dnsmos_ovrl"] if with_dnsmos else math.nan,
        "vuv_error": spectral.vuv_error,
        "voiced": spectral.voiced,
    }


def _mean(values: list[float]) -> float:
    """The mean of the finite values (PESQ is NaN where it finds no speech; DNSMOS when not scored)."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else math.nan


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: _mean([row[name] for row in rows]) for name in SCORES}


def _ratios(system: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """system / baseline per metric, inverted for lower-is-better metrics, so above 1 always means better."""
    ratios = {}
    for name in METRICS:
        a, b = system[name], baseline[name]
        if not (a and b):  # a perfect error of 0 (the ceiling's V/UV) has no ratio
            ratios[name] = math.nan
            continue
        ratio = a / b if HIGHER_IS_BETTER[name] else b / a
        ratios[name] = round(float(ratio), 3) if math.isfinite(ratio) else math.nan
    return ratios


def bench_quality(
    vocoders: list[Vocoder], caches: list[Path], out_dir: Path, settings: QualitySettings, progress: bool = True
) -> dict[str, Any]:
    """Score every system on every cache's held-out utterances; writes WAVs and spectrogram grids under `out_dir`
    and returns per-source and overall means and ratios (see `summary_table`)."""
    if not vocoders:
        raise VocoderError("bench quality: name at least one --model")
    rate = vocoders[0].sample_rate
    if rate != metrics.DNSMOS_RATE or any(v.sample_rate != rate for v in vocoders):
        raise VocoderError(
            f"bench quality scores 16 kHz models (PESQ-WB, DNSMOS), found {[v.sample_rate for v in vocoders]}"
        )
    systems = [CEILING, GRIFFIN_LIM, *(vocoder.name for vocoder in vocoders)]
    if len(set(systems)) != len(systems):
        raise VocoderError(f"bench quality: system names must differ, found {systems}")
    mu = vocoders[0].config.audio.mu
    scores: dict[str, dict[str, list[dict[str, float]]]] = {}
    utterances: dict[str, list[str]] = {}
    for cache_dir in caches:
        source = cache_dir.name
        cache = FeatureCache(cache_dir)
        ids = held_out(cache_dir, settings.split, settings.limit)
        utterances[source] = ids
        scores[source] = {system: [] for system in systems}
        gain, log_floor = 10 ** (settings.gain_db / 20), vocoders[0].config.features.log_floor
        references = [load_wav(cache.audio_path(utterance), rate) * np.float32(gain) for utterance in ids]
        features = [scaled(read_features(cache.feature_path(utterance)), gain, log_floor) for utterance in ids]
        if settings.tilt:
            references = [coloured(reference, settings.tilt) for reference in references]
            features = [reextracted(*pair, vocoders[0].config) for pair in zip(features, references, strict=True)]
        # Each model synthesizes the source's utterances as one batch: a step of several costs little more than
        # a step of one.
        synthesized = {  # each model at its own default sampling, as a user hears it
            vocoder.name: vocoder.synthesize_batch(
                [model_features(vocoder, *pair) for pair in zip(features, references, strict=True)],
                sampling=vocoder.sampling(seed=settings.seed),
            )
            for vocoder in vocoders
        }
        for index, utterance in enumerate(tqdm(ids, desc=source, unit="utt", disable=not progress)):
            reference = references[index]
            outputs = {
                CEILING: mu_law_ceiling(reference, mu),
                GRIFFIN_LIM: griffin_lim(
                    griffin_lim_mel(features[index], reference, vocoders[0].config),
                    vocoders[0].config,
                    settings.griffin_lim_iterations,
                    len(reference),
                    settings.seed,
                ),
                # as written (CLI, service): a de-emphasised output past full scale is clipped, and heard so
                **{name: full_scale(waveforms[index]) for name, waveforms in synthesized.items()},
            }
            for system, wav in outputs.items():
                scores[source][system].append(score(reference, wav, rate, settings.with_dnsmos))
                save_wav(out_dir / "wavs" / source / system / f"{utterance}.wav", wav, rate)
            if index < settings.spectrograms:
                panels = [("recording", reference), *((name, outputs[name]) for name in systems[1:])]
                image = out_dir / "spectrograms" / f"{source}_{utterance}.png"
                spectrogram_comparison(panels, rate, f"{source}: {utterance}", image)
    report = summarize(scores, utterances, systems, settings)
    report["sampling"] = {vocoder.name: _sampling_label(vocoder) for vocoder in vocoders}
    return report


def _sampling_label(vocoder: Vocoder) -> str:
    """How a model sampled in the run, e.g. `sample, temperature 0.8` (its defaults, or the run's override)."""
    sampling = vocoder.default_sampling
    shaped = [f"{name} {getattr(sampling, name)}" for name in sampling.reshaping() if name != "strategy"]
    return ", ".join([sampling.strategy, *shaped])


def summarize(
    scores: dict[str, dict[str, list[dict[str, float]]]],
    utterances: dict[str, list[str]],
    systems: list[str],
    settings: QualitySettings,
) -> dict[str, Any]:
    """Means per source and over all utterances, each system's ratios to Griffin-Lim and to the ceiling."""
    groups = dict(scores)
    groups["all"] = {system: [row for source in scores.values() for row in source[system]] for system in systems}
    report: dict[str, Any] = {
        "settings": settings.__dict__,
        "utterances": utterances,
        "sources": {},
    }
    for group, by_system in groups.items():
        means = {system: _means(rows) for system, rows in by_system.items()}
        report["sources"][group] = {
            system: {
                "mean": {name: round(value, 3) for name, value in means[system].items()},
                "vs_griffin_lim": _ratios(means[system], means[GRIFFIN_LIM]),
                "vs_ceiling": _ratios(means[system], means[CEILING]),
            }
            for system in systems
        }
    return report


def summary_table(report: dict[str, Any]) -> str:
    """A Markdown table: one row per source and system, score means and the ratio to Griffin-Lim of the run (the
    ceiling's voiced share is the recording's, to within its quantisation)."""
    header = (
        "| source | system | PESQ-WB ↑ | STOI ↑ | MCD (dB) ↓ | DNSMOS OVRL ↑ | V/UV error ↓ | voiced | PESQ / GL "
        "| DNSMOS / GL |"
    )
    lines = [header, "|" + "---|" * 10]
    for source, systems in report["sources"].items():
        count = (
            sum(len(ids) for ids in report["utterances"].values())
            if source == "all"
            else len(report["utterances"][source])
        )
        for system, entry in systems.items():
            mean, ratio = entry["mean"], entry["vs_griffin_lim"]
            cells = [f"{mean[name]:.3f}" if math.isfinite(mean[name]) else "–" for name in SCORES]
            lines.append(
                f"| {source} ({count}) | {system} | {' | '.join(cells)} | {ratio['pesq_wb']} | {ratio['dnsmos_ovrl']} |"
            )
    return "\n".join(lines)
