"""Training data: random frame-aligned segments from a feature cache, with receptive-field context.

A segment is `context + segment_frames` frames of conditioning and the matching audio. The loss covers only the
last `segment_frames` frames, whose every sample sees a full receptive field of real history; the context frames
before them feed that history. `margin` extra frames on each side let the upsampler see real neighbours and are
cropped after upsampling. A segment may hang over either end of its utterance: the audio there is silence and
masked out of the loss, the conditioning repeats the edge frame (as the upsampler extends it at synthesis), and
every frame, the first and the last included, is in the loss of equally many segments.

Audio enters the model's signal domain here (pre-emphasised when `audio.preemphasis` is set). Training batches can
be augmented (random gain and spectral tilt, applied to the audio and followed by the mel) and carry a noisy copy of
the targets as the teacher-forced input (noise injection); validation batches are clean.

For an LPC model (`model.lpc_order > 0`) each segment's predictor comes from its (augmented) mel frames; the
targets are the mu-law excitation `s_t - p_t` with p_t predicted from the true past, the teacher-forced input is the
signal's class ids (noisy when noise is injected; the prediction is from the clean past), and the prediction's
class ids ride along as the model's second input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from scipy import signal

from vocoder.audio import load_wav, mu_law_encode, preemphasize
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache, ManifestRow
from vocoder.corpus.preprocess import PEAK
from vocoder.errors import VocoderError
from vocoder.features.featurefile import read_features, validate_features
from vocoder.features.level import InputLevels, mel_level_db
from vocoder.features.lpc import excitation_targets, frame_lpc, predict_signal


class TrainingDataError(VocoderError):
    """A feature cache that cannot train this config; says which file and why."""


@dataclass
class Batch:
    frames: torch.Tensor  # [B, margin + context + segment + margin, C] frame-rate conditioning
    targets: torch.Tensor  # [B, (context + segment) * hop] class ids
    mask: torch.Tensor  # [B, (context + segment) * hop] 1 where the loss counts
    speaker_ids: torch.Tensor | None  # [B]
    inputs: torch.Tensor | None = None  # [B, (context + segment) * hop] class ids the model sees as its past
    prediction: torch.Tensor | None = None  # [B, (context + segment) * hop] LPC prediction's class ids (LPC only)
    signal: torch.Tensor | None = None  # [B, (context + segment) * hop] the signal's clean class ids (LPC only)
    f0: torch.Tensor | None = None  # [B, margin + context + segment + margin] frame F0 in Hz (a harmonic source's)

    @property
    def signal_ids(self) -> torch.Tensor:
        """The clean class ids of the signal itself: the targets, or an LPC model's `signal` (its targets are the
        excitation's). What distillation's spectral and adversarial terms compare a student's sample with."""
        return self.targets if self.signal is None else self.signal

    @property
    def past(self) -> torch.Tensor:
        """The class ids the model is teacher-forced on: `inputs` when set (a noisy copy of the signal's ids),
        else the signal's ids."""
        return self.signal_ids if self.inputs is None else self.inputs

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.frames.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.mask.to(device, non_blocking=True),
            None if self.speaker_ids is None else self.speaker_ids.to(device),
            None if self.inputs is None else self.inputs.to(device, non_blocking=True),
            None if self.prediction is None else self.prediction.to(device, non_blocking=True),
            None if self.signal is None else self.signal.to(device, non_blocking=True),
            None if self.f0 is None else self.f0.to(device, non_blocking=True),
        )


@dataclass(frozen=True)
class Utterance:
    row: ManifestRow
    conditioning: np.ndarray  # [frames, C]
    audio: np.ndarray  # [frames * hop] float32, in the model's signal domain (pre-emphasised if configured)
    f0: np.ndarray | None = None  # [frames] the recording's F0 in Hz, 0 unvoiced (a student's harmonic source)


def _how_computed(features: dict) -> dict:
    """Feature settings minus which arrays a model reads: that is not a property of the files, so a cache holding
    mel, lf0 and vuv serves a model conditioned on the mel alone and one that also reads F0, if every setting that
    computes them agrees."""
    return {key: value for key, value in features.items() if key != "conditioning"}


class TrainingCorpus:
    """The utterances of one split of one or more feature caches (a training mix), each checked against the config
    before training starts; for a model that reads F0 (`Config.reads_f0`: a student's harmonic source), each with
    its F0 from its feature file."""

    def __init__(self, roots: Path | list[Path], config: Config, split: str) -> None:
        self.config = config
        self.utterances: list[Utterance] = []
        for root in [roots] if isinstance(roots, Path) else roots:
            cache = FeatureCache(root)
            self._check_stamp(root, cache)
            rows = sorted((row for row in cache.read_manifest().values() if row.split == split), key=lambda r: r.id)
            if not rows:
                raise TrainingDataError(f"{cache.manifest_path}: no '{split}' utterances in the manifest")
            unknown = sorted({row.speaker for row in rows} - set(config.speakers)) if config.speakers else []
            if unknown:
                raise TrainingDataError(
                    f"{cache.manifest_path}: speakers {unknown} are not in the config's speakers {config.speakers}"
                )
            self.utterances += [self._load(cache, row) for row in rows]
        self.rows = [utterance.row for utterance in self.utterances]

    def _check_stamp(self, root: Path, cache: FeatureCache) -> None:
        try:
            stamp = json.loads(cache.stamp_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TrainingDataError(f"{cache.stamp_path}: missing or unreadable ({error})") from None
        expectations = {
            "audio": self.config.audio.cache_stamp(),
            "features": _how_computed(self.config.features.model_dump(mode="json")),
        }
        arrays = stamp.get("arrays", stamp.get("features", {}).get("conditioning"))  # what its files hold
        missing = [name for name in self.config.feature_arrays() if name not in (arrays or [])]
        if missing:
            raise TrainingDataError(
                f"{cache.stamp_path}: the cache's feature files hold {arrays}, not {missing}, which config "
                f"{self.config.name!r} reads; preprocess into a new folder with this config"
            )
        for section, expected in expectations.items():
            found = stamp.get(section)
            if isinstance(found, dict) and section == "features":
                found = _how_computed(found)
            if found != expected:
                changed = sorted(k for k in expected if not isinstance(found, dict) or found.get(k) != expected[k])
                raise TrainingDataError(
                    f"{root}: the cache was built with other {section} settings ({changed}); "
                    "preprocess again with this config"
                )

    def _load(self, cache: FeatureCache, row: ManifestRow) -> Utterance:
        features = read_features(cache.feature_path(row.id))
        validate_features(features, self.config)
        conditioning = features.conditioning(self.config)
        audio = load_wav(cache.audio_path(row.id), self.config.audio.sample_rate)
        expected = features.n_samples
        if len(audio) != expected:
            raise TrainingDataError(
                f"{cache.audio_path(row.id)}: expected {expected} samples ({features.n_frames} frames), "
                f"found {len(audio)}"
            )
        f0 = features.f0_hz() if self.config.reads_f0 else None
        return Utterance(row, conditioning, preemphasize(audio, self.config.audio.preemphasis), f0)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def total_seconds(self) -> float:
        return sum(utterance.row.duration for utterance in self.utterances)

    def input_levels(self) -> InputLevels | None:
        """The band of mel levels training on these utterances shows a model (with the config's gain
        augmentation), which its model files record; None for a model that reads no mel."""
        if "mel" not in self.config.features.conditioning:
            return None
        mel = self.config.features.columns("mel")
        levels = [mel_level_db(utterance.conditioning[:, mel]) for utterance in self.utterances]
        headroom_db = 20 * math.log10(Augmentation.PEAK / PEAK)  # how far up its gain can take a normalised one
        return InputLevels.of_training(levels, self.config.train.gain_db, headroom_db)


class Augmentation:
    """Random gain and spectral tilt of a segment, with the log-mel moved to match (LPCNet's augmentation).

    Both are linear filters, so they commute with pre-emphasis and apply to the model-domain audio directly. The
    log-mel of filtered audio is the log-mel plus the filter's log magnitude at each band's centre: exact for the
    gain, and close for a smooth second-order filter. Peaks are kept below 1 by lowering the gain.
    """

    PEAK = 0.99

    def __init__(self, config: Config) -> None:
        self.gain_db, self.tilt = config.train.gain_db, config.train.tilt
        features = config.features
        fmax = features.fmax or config.audio.sample_rate / 2
        self.band_hz = librosa.mel_frequencies(features.n_mels + 2, fmin=features.fmin, fmax=fmax)[1:-1]
        self.sample_rate = config.audio.sample_rate
        self.mel = features.columns("mel")
        self.log_floor = float(np.log(features.log_floor))

    def __call__(self, frames: np.ndarray, audio: np.ndarray, generator: torch.Generator) -> None:
        """Augment one segment in place: `frames [frames, C]` (its mel columns) and `audio [samples]`."""
        draws = torch.rand(5, generator=generator, dtype=torch.float64).numpy() * 2 - 1
        log_response = np.zeros(len(self.band_hz))
        if self.tilt > 0:
            b, a = np.array([1.0, *(self.tilt * draws[:2])]), np.array([1.0, *(self.tilt * draws[2:4])])
            audio[:] = signal.lfilter(b, a, audio)
            _, response = signal.freqz(b, a, worN=self.band_hz, fs=self.sample_rate)
            log_response = np.log(np.abs(response))
        gain = 10 ** (self.gain_db * draws[4] / 20)
        peak = float(np.max(np.abs(audio), initial=0.0))
        gain = min(gain, self.PEAK / peak) if peak > 0 else gain
        audio *= gain
        mel = frames[:, self.mel]
        frames[:, self.mel] = np.maximum(mel + (log_response + np.log(gain)).astype(np.float32), self.log_floor)


class SegmentSampler:
    """Cuts batches of random segments; all randomness comes from one generator whose state is checkpointed.
    `augment`: training batches get the config's augmentation and noise injection; validation batches do not."""

    def __init__(self, corpus: TrainingCorpus, context_frames: int, margin_frames: int, augment: bool = False) -> None:
        self.corpus = corpus
        self.config = corpus.config
        self.context = context_frames
        self.margin = margin_frames
        train = self.config.train
        self.augmentation = Augmentation(self.config) if augment and train.augments else None
        self.input_noise = train.input_noise if augment else 0.0

    @staticmethod
    def for_model(corpus: TrainingCorpus, receptive_field: int, augment: bool = False) -> SegmentSampler:
        hop = corpus.config.features.hop_length
        margin = corpus.config.model.prenet_kernel_size // 2 + 1
        return SegmentSampler(corpus, -(-receptive_field // hop), margin, augment)

    @property
    def segment_frames(self) -> int:
        return self.config.train.segment_frames

    def batch(self, indices: list[int], generator: torch.Generator) -> Batch:
        """One segment of each utterance in `indices`, at offsets drawn from `generator`."""
        segments, f0 = [], []
        for index in indices:
            utterance = self.corpus.utterances[index]
            # Starts from 1 - segment_frames on: the ends of an utterance are learnt as often as its middle
            # (starts within the utterance alone put its last frame in 1/segment_frames as many segments).
            start = int(torch.randint(1 - self.segment_frames, len(utterance.conditioning), (1,), generator=generator))
            frames, audio, mask = self.segment(utterance, start)
            if self.augmentation is not None:
                self.augmentation(frames, audio, generator)
            segments.append((frames, audio, mask))
            f0.append(self.segment_f0(utterance, start))
        return self._collate(segments, indices, generator, f0)

    def segment(self, utterance: Utterance, loss_start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames with context and margins, audio, mask) with the loss starting at frame `loss_start`."""
        hop = self.config.features.hop_length
        first = loss_start - self.context  # first frame of real (or padded) history
        total = self.context + self.segment_frames
        n_frames = len(utterance.conditioning)
        rows = np.arange(first - self.margin, first + total + self.margin)
        frames = utterance.conditioning[np.clip(rows, 0, n_frames - 1)]  # the edge frames repeated past the ends
        audio = np.zeros(total * hop, np.float32)
        mask = np.zeros(total * hop, np.float32)
        lo, hi = max(0, first), min(n_frames, first + total)
        audio[(lo - first) * hop : (hi - first) * hop] = utterance.audio[lo * hop : hi * hop]
        loss_lo = max(lo, loss_start)
        mask[(loss_lo - first) * hop : (hi - first) * hop] = 1.0
        return frames, audio, mask

    def segment_f0(self, utterance: Utterance, loss_start: int) -> np.ndarray | None:
        """The F0 of `segment`'s frames (margins included), 0 past the utterance's ends (silence is unvoiced); None
        for an utterance without F0."""
        if utterance.f0 is None:
            return None
        first = loss_start - self.context - self.margin
        rows = np.arange(first, first + self.context + self.segment_frames + 2 * self.margin)
        inside = (rows >= 0) & (rows < len(utterance.f0))
        return np.where(inside, utterance.f0[np.clip(rows, 0, len(utterance.f0) - 1)], 0.0).astype(np.float32)

    def _collate(
        self,
        segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        indices: list[int],
        generator: torch.Generator,
        f0: list[np.ndarray | None] | None = None,
    ) -> Batch:
        """The batch of `segments` (frames, audio, mask) of the utterances `indices`, with their `segment_f0`s."""
        frames, audio, mask = (torch.from_numpy(np.stack(parts)) for parts in zip(*segments, strict=True))
        f0_frames = None if f0 is None or f0[0] is None else torch.from_numpy(np.stack(f0))
        speakers = None
        if self.config.speakers:
            names = [self.corpus.utterances[i].row.speaker for i in indices]
            speakers = torch.tensor([self.config.speaker_id(name) for name in names], dtype=torch.long)
        mu = self.config.audio.mu
        inputs = prediction = signal = None
        if self.config.model.lpc_order:
            coefficients = frame_lpc(frames[:, self.margin : -self.margin], self.config)
            predicted = predict_signal(coefficients, audio, self.config.features.hop_length)
            targets, signal, prediction = excitation_targets(audio, predicted, mu)
        else:
            targets = mu_law_encode(audio, mu)
        if self.input_noise > 0:
            deviation = torch.rand(len(segments), 1, generator=generator) * self.input_noise
            noise = torch.randn(targets.shape, generator=generator) * deviation
            clean = targets if signal is None else signal
            inputs = (clean + noise.round().long()).clamp(0, mu)
        return Batch(frames, targets, mask, speakers, inputs, prediction, signal, f0_frames)

    def fixed_batches(self, count: int, batch_size: int, seed: int) -> list[Batch]:
        """The same `count` segments every time: the validation set."""
        generator = torch.Generator().manual_seed(seed)
        indices = [i % len(self.corpus) for i in range(count)]
        return [self.batch(indices[i : i + batch_size], generator) for i in range(0, count, batch_size)]
