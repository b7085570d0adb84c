"""Text to a feature file: Festival's labels give the linguistic array; lf0 and vuv come from one of two sources.

- `waveform` (default): WORLD's F0 measured on Festival's own waveform with the config's F0 settings, exactly as
  corpus preprocessing measures it on training audio, so a model sees at inference what it saw in training (the
  slt HTS voice generates its own F0 and departs from its intonation targets by up to ~1.5 semitones).
- `targets`: the log of Festival's F0 targets, linearly interpolated in log-Hz between targets at the frame centres
  (ends held flat), so it is continuous like the acoustic lf0; vuv is 1 in frames whose phone is voiced (the
  question 'C-Voiced': vowels and voiced consonants), which is how Festival's own synthesis voices them.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from vocoder.audio import load_wav, save_wav
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.acoustic import f0_features
from vocoder.features.featurefile import Features, save_features
from vocoder.features.linguistic import Segment, format_labels, linguistic_features, load_question_set
from vocoder.frontend.festival import FestivalUtterance, run_festival

VOICED_QUESTION = "C-Voiced"
F0_SOURCES = ("waveform", "targets")


def check_linguistic_config(config: Config) -> None:
    """A config that conditions on linguistic features must have the question set's width."""
    features = config.features
    dim = load_question_set().dim
    if "linguistic" in features.conditioning and features.linguistic_dim != dim:
        raise VocoderError(
            f"config '{config.name}': features.linguistic_dim is {features.linguistic_dim}, "
            f"but the question set gives {dim} values per frame"
        )


def target_f0(targets: np.ndarray, n_frames: int, sample_rate: int, hop_length: int) -> np.ndarray:
    """`[frames]` continuous log-F0 from `[n, 2]` (seconds, Hz) targets; zeros if there are none."""
    if len(targets) == 0:
        return np.zeros(n_frames, dtype=np.float32)
    centres = (np.arange(n_frames) + 0.5) * hop_length / sample_rate
    return np.interp(centres, targets[:, 0], np.log(targets[:, 1])).astype(np.float32)


def label_features(segments: Sequence[Segment], config: Config, speaker: str | None, source: str) -> Features:
    """What labels alone give, on the config's frame grid: the linguistic array, and vuv from the voiced-phone
    question (no F0: a label file has none, Festival's analysis adds its targets)."""
    rate, hop = config.audio.sample_rate, config.features.hop_length
    questions = load_question_set()
    linguistic = linguistic_features(segments, rate, hop, questions)
    vuv = linguistic[:, questions.index(VOICED_QUESTION)].copy()
    return Features(sample_rate=rate, hop_length=hop, linguistic=linguistic, vuv=vuv, speaker=speaker, source=source)


def utterance_features(utterance: FestivalUtterance, config: Config, speaker: str | None, source: str) -> Features:
    """The feature file of one Festival utterance on the config's frame grid, lf0 from Festival's F0 targets."""
    features = label_features(utterance.segments, config, speaker, source)
    lf0 = target_f0(utterance.targets, features.n_frames, config.audio.sample_rate, config.features.hop_length)
    return replace(features, lf0=lf0)


def analyse_text(
    text: str, voice: str, config: Config, speaker: str | None, source: str, timeout: float | None, speed: float = 1.0
) -> Features:
    """One text through Festival with `voice` at `speed` (its process killed after `timeout` seconds) to its
    features, F0 from Festival's targets; blocking. Raises `FestivalError` (`FestivalTimeout` when too slow)."""
    with tempfile.TemporaryDirectory(prefix="festival-") as scratch:
        [utterance] = run_festival([text], voice, Path(scratch), timeout=timeout, speed=speed)
    return utterance_features(utterance, config, speaker, source)


def fit_wave(wav: np.ndarray, n_frames: int, hop_length: int) -> np.ndarray:
    """Cut or zero-pad a waveform to exactly `n_frames * hop_length` samples."""
    target = n_frames * hop_length
    return np.pad(wav[:target], (0, max(0, target - len(wav)))).astype(np.float32, copy=False)


def read_sentences(text_or_file: str) -> tuple[list[str], str]:
    """Sentences and an id stem: one per non-empty line of a file, or the argument itself as one sentence."""
    path = Path(text_or_file)
    if len(text_or_file) < 4096 and path.is_file():
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as error:
            raise VocoderError(f"{path}: cannot read text: {error}") from None
        sentences = [line for line in lines if line]
        if not sentences:
            raise VocoderError(f"{path}: the file holds no text")
        return sentences, re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem) or "utt"
    if not text_or_file.strip():
        raise VocoderError("no text given")
    return [text_or_file], "utt"


def text_to_features(
    sentences: Sequence[str],
    voice: str,
    out_dir: Path,
    config: Config,
    stem: str = "utt",
    wave: bool = False,
    f0_source: str = "waveform",
) -> list[Path]:
    """Write `<stem>_<n>.npz` (and `.lab`, and with `wave` Festival's `.wav` at the config rate) per sentence."""
    if f0_source not in F0_SOURCES:
        raise VocoderError(f"f0 source: expected one of {list(F0_SOURCES)}, found {f0_source!r}")
    check_linguistic_config(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    rate, hop = config.audio.sample_rate, config.features.hop_length
    needs_wave = wave or f0_source == "waveform"
    written = []
    with tempfile.TemporaryDirectory(prefix="festival-") as scratch:
        for number, utterance in enumerate(run_festival(sentences, voice, Path(scratch), needs_wave), start=1):
            name = f"{stem}_{number:04d}" if len(sentences) > 1 else stem
            features = utterance_features(utterance, config, voice, str(out_dir / f"{name}.npz"))
            audio = None
            if utterance.wave_path is not None:
                audio = fit_wave(load_wav(utterance.wave_path, rate), features.n_frames, hop)
            if f0_source == "waveform":
                lf0, vuv = f0_features(audio, rate, config.features)
                features = replace(features, lf0=lf0, vuv=vuv)
            written.append(save_features(out_dir / f"{name}.npz", features))
            (out_dir / f"{name}.lab").write_text(format_labels(utterance.segments))
            if wave:
                save_wav(out_dir / f"{name}.wav", audio, rate)
    return written
