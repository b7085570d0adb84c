"""Corpus preprocessing: audio and labels in, a feature cache out (one feature file and one target wav each).

Per utterance: load at the config's rate (resampling), trim silence, peak-normalise, cut to whole frames,
extract the configured features, write both files atomically. Trimming depends on what conditions the model:
- linguistic configs trim by the labels: a leading or trailing pause segment longer than PAUSE_KEEP_S is
  shortened to PAUSE_KEEP_S, and the labels are shifted with the audio, so both stay aligned;
- other configs trim by energy (frames more than TRIM_TOP_DB below the loudest one) and keep TRIM_MARGIN_S
  either side.
Bad files (unreadable, silent, too short or too long, bad labels; a path with an audio suffix that is a folder or
a symbolic link that loops or leads nowhere) are skipped and listed in report.json with the reason. A WAV whose
header claims more audio data than the file holds (cut short, or written to a pipe) is kept, since its features
are made from the audio it does hold, and listed under `flagged` in report.json.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vocoder.audio import load_wav, save_wav, wav_shortfall
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache, ManifestRow, feature_stamp, split_of
from vocoder.corpus.layouts import CorpusItem, discover
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features, frame_count
from vocoder.features.featurefile import Features, save_features
from vocoder.features.linguistic import (
    UNITS_PER_SECOND,
    Segment,
    label_samples,
    linguistic_features,
    load_question_set,
    read_labels,
)
from vocoder.vocabulary import F0_ARRAYS

PAUSES = frozenset({"pau", "sil", "h#", "ssil", "#"})
PAUSE_KEEP_S = 0.5
TRIM_TOP_DB = 40.0
TRIM_FRAME, TRIM_HOP = 1024, 256
TRIM_MARGIN_S = 0.05
PEAK = 0.95
SILENCE_PEAK = 1e-3
MIN_SECONDS = 0.3
MAX_LABEL_MISMATCH_S = 0.25
PREPROCESSING = {
    "pause_keep_s": PAUSE_KEEP_S,
    "trim_top_db": TRIM_TOP_DB,
    "trim_margin_s": TRIM_MARGIN_S,
    "peak": PEAK,
    "min_seconds": MIN_SECONDS,
}


class SkipUtterance(VocoderError):
    """This utterance cannot be used; the reason goes to report.json and the run goes on."""


@dataclass(frozen=True)
class Outcome:
    item: CorpusItem
    row: ManifestRow | None
    reason: str | None


def _trim_by_labels(wav: np.ndarray, segments: list[Segment], rate: int) -> tuple[np.ndarray, list[Segment]]:
    """Shorten over-long leading/trailing pauses in audio and labels alike."""
    keep = round(PAUSE_KEEP_S * UNITS_PER_SECOND)
    head = segments[0]
    cut_units = max(0, head.end - head.start - keep) if head.phone in PAUSES else 0
    cut_samples = round(cut_units * rate / UNITS_PER_SECOND)
    cut_units = round(cut_samples * UNITS_PER_SECOND / rate)
    shifted = [replace(s, start=max(0, s.start - cut_units), end=s.end - cut_units) for s in segments]
    tail = shifted[-1]
    if tail.phone in PAUSES and tail.end - tail.start > keep:
        shifted[-1] = replace(tail, end=tail.start + keep)
    return wav[cut_samples:], shifted


def _trim_by_energy(wav: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing audio whose frame RMS lies more than TRIM_TOP_DB below the loudest frame."""
    padded = np.pad(wav, (0, max(0, TRIM_FRAME - len(wav))))
    frames = np.lib.stride_tricks.sliding_window_view(padded, TRIM_FRAME)[::TRIM_HOP]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    loud = np.nonzero(rms > rms.max() * 10 ** (-TRIM_TOP_DB / 20))[0]
    start, end = loud[0] * TRIM_HOP, loud[-1] * TRIM_HOP + TRIM_FRAME
    margin = round(TRIM_MARGIN_S * rate)
    return wav[max(0, start - margin) : min(len(wav), end + margin)]


def _acoustic_config(config: Config) -> Config:
    """The config minus 'linguistic' (which comes from labels), plus lf0 and vuv, which linguistic models need."""
    wanted = [name for name in config.features.conditioning if name != "linguistic"]
    if "linguistic" in config.features.conditioning:
        wanted += [name for name in F0_ARRAYS if name not in wanted]
    features = config.features.model_copy(update={"conditioning": wanted})
    return config.model_copy(update={"features": features})


def check_audio_path(path: Path) -> None:
    """SkipUtterance naming what `path` is when it has an audio suffix but is no file that can hold audio."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            raise SkipUtterance(f"a symbolic link to a missing file ({os.readlink(path)})") from None
        except (RuntimeError, OSError):  # a loop: RuntimeError up to Python 3.12, OSError (ELOOP) from 3.13
            raise SkipUtterance("a symbolic link that loops (following it never reaches a file)") from None
    if path.is_dir():
        raise SkipUtterance("a directory, not an audio file")
    if path.exists() and not path.is_file():
        raise SkipUtterance("not a regular file (a device, pipe or socket)")


def flag_of(path: Path) -> str | None:
    """Why a kept utterance's source deserves a look, if it does (report.json's `flagged`)."""
    shortfall = wav_shortfall(path)
    if shortfall is None:
        return None
    claimed, present = shortfall
    return (
        f"the WAV header claims {claimed} bytes of audio data, the file holds {present}: truncated, or written "
        "without its final size; kept with the audio it holds"
    )


def process(item: CorpusItem, config: Config, cache: FeatureCache) -> ManifestRow:
    """Make and write the feature file and target wav of one utterance, or raise SkipUtterance."""
    rate, hop = config.audio.sample_rate, config.features.hop_length
    linguistic = "linguistic" in config.features.conditioning
    check_audio_path(item.audio)
    wav = load_wav(item.audio, rate)
    if np.max(np.abs(wav)) < SILENCE_PEAK:
        raise SkipUtterance("silent")
    segments = None
    if linguistic:
        if item.labels is None or not item.labels.is_file():
            raise SkipUtterance("no full-context label file (the config conditions on linguistic features)")
        segments = read_labels(item.labels)
        mismatch = abs(label_samples(segments, rate) - len(wav)) / rate
        if mismatch > MAX_LABEL_MISMATCH_S:
            raise SkipUtterance(f"labels and audio lengths differ by {mismatch:.2f} s")
        wav, segments = _trim_by_labels(wav, segments, rate)
        n_frames = frame_count(label_samples(segments, rate), hop)
    else:
        wav = _trim_by_energy(wav, rate)
        n_frames = frame_count(len(wav), hop)
    if n_frames * hop < MIN_SECONDS * rate:
        raise SkipUtterance(f"too short: {n_frames * hop / rate:.2f} s after trimming")
    if n_frames > config.features.max_frames:
        raise SkipUtterance(f"too long: {n_frames} frames, features.max_frames is {config.features.max_frames}")
    wav = np.pad(wav[: n_frames * hop], (0, max(0, n_frames * hop - len(wav))))
    peak = float(np.max(np.abs(wav)))
    if peak < SILENCE_PEAK:
        raise SkipUtterance("silent after trimming")
    wav = (wav * (PEAK / peak)).astype(np.float32)
    source = str(cache.feature_path(item.id))
    features = extract_features(wav, _acoustic_config(config), speaker=item.speaker, source=source)
    if segments is not None:
        arrays = features.arrays()
        arrays["linguistic"] = linguistic_features(segments, rate, hop, load_question_set())
        features = Features(rate, hop, speaker=item.speaker, source=source, **arrays)
    if features.n_frames != n_frames:
        raise SkipUtterance(f"feature arrays have {features.n_frames} frames, expected {n_frames}")
    save_wav(cache.audio_path(item.id), wav, rate)
    save_features(cache.feature_path(item.id), features)
    return ManifestRow(
        id=item.id,
        speaker=item.speaker,
        split=split_of(item.id),
        frames=n_frames,
        duration=round(n_frames * hop / rate, 4),
        text=item.text,
        source=str(item.audio),
    )


def _attempt(item: CorpusItem, config: Config, cache: FeatureCache) -> Outcome:
    """Run `process`; any failure of this one file becomes a skip reason instead of ending the run."""
    try:
        return Outcome(item, process(item, config, cache), None)
    except VocoderError as error:
        return Outcome(item, None, str(error))
    except Exception as error:  # a corrupt file can fail deep inside a decoder or DSP routine
        return Outcome(item, None, f"{type(error).__name__}: {error}")


def preprocess(
    layout: str, corpus_dir: Path, out: Path, config: Config, jobs: int | None = None, progress: bool = True
) -> dict[str, Any]:
    """Fill the feature cache at `out` from a corpus; returns the report that is also written to report.json."""
    items = discover(layout, corpus_dir)
    cache = FeatureCache(out)
    cleared = cache.open(feature_stamp(config, PREPROCESSING))
    done = cache.read_manifest()
    wanted = {item.id for item in items}
    rows = {key: row for key, row in done.items() if key in wanted}
    todo = [item for item in items if item.id not in rows]
    skipped: list[dict[str, str]] = []
    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(todo), desc="preprocess", unit="utt", disable=not progress)

    def record(outcome: Outcome) -> None:
        if outcome.row is not None:
            rows[outcome.row.id] = outcome.row
            cache.append(outcome.row)
        else:
            skipped.append({"id": outcome.item.id, "source": str(outcome.item.audio), "reason": str(outcome.reason)})
        bar.update()

    if workers == 1:
        for item in todo:
            record(_attempt(item, config, cache))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_attempt, item, config, cache) for item in todo]
            for future in as_completed(futures):
                record(future.result())
    bar.close()
    flagged = [
        {"id": item.id, "source": str(item.audio), "reason": reason}
        for item in items
        if item.id in rows and (reason := flag_of(item.audio)) is not None
    ]
    report = {
        "layout": layout,
        "corpus": str(corpus_dir),
        "utterances": len(items),
        "written": len(todo) - len(skipped),
        "reused": len(items) - len(todo),
        "cleared_stale_cache": cleared,
        "skipped": sorted(skipped, key=lambda entry: entry["id"]),
        "flagged": flagged,
    }
    cache.finish(rows.values(), report)
    return report
