"""Training data: random frame-aligned segments from a feature cache, with receptive-field context.

A segment is `context + segment_frames` frames of conditioning and the matching audio. The loss covers only the
last `segment_frames` frames, whose every sample sees a full receptive field of real history; the context frames
before them feed that history. `margin` extra frames on each side let the upsampler see real neighbours and are
cropped after upsampling. A segment may hang over either end of its utterance: the audio there is silence and
masked out of the loss, the conditioning repeats the edge frame (as the upsampler extends it at synthesis), and
every frame, the first and the last included, is in the loss of equally many segments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vocoder.audio import load_wav, mu_law_encode
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache, ManifestRow
from vocoder.errors import VocoderError
from vocoder.features.featurefile import read_features, validate_features


class TrainingDataError(VocoderError):
    """A feature cache that cannot train this config; says which file and why."""


@dataclass
class Batch:
    frames: torch.Tensor  # [B, margin + context + segment + margin, C] frame-rate conditioning
    targets: torch.Tensor  # [B, (context + segment) * hop] class ids
    mask: torch.Tensor  # [B, (context + segment) * hop] 1 where the loss counts
    speaker_ids: torch.Tensor | None  # [B]

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.frames.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.mask.to(device, non_blocking=True),
            None if self.speaker_ids is None else self.speaker_ids.to(device),
        )


@dataclass(frozen=True)
class Utterance:
    row: ManifestRow
    conditioning: np.ndarray  # [frames, C]
    audio: np.ndarray  # [frames * hop] float32


class TrainingCorpus:
    """The utterances of one split of a feature cache, checked against the config before training starts."""

    def __init__(self, root: Path, config: Config, split: str) -> None:
        self.config = config
        self.cache = FeatureCache(root)
        self._check_stamp(root)
        rows = [row for row in self.cache.read_manifest().values() if row.split == split]
        if not rows:
            raise TrainingDataError(f"{self.cache.manifest_path}: no '{split}' utterances in the manifest")
        unknown = sorted({row.speaker for row in rows} - set(config.speakers)) if config.speakers else []
        if unknown:
            raise TrainingDataError(
                f"{self.cache.manifest_path}: speakers {unknown} are not in the config's speakers {config.speakers}"
            )
        self.rows = sorted(rows, key=lambda row: row.id)
        self.utterances = [self._load(row) for row in self.rows]

    def _check_stamp(self, root: Path) -> None:
        try:
            stamp = json.loads(self.cache.stamp_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TrainingDataError(f"{self.cache.stamp_path}: missing or unreadable ({error})") from None
        for section in ("audio", "features"):
            expected = getattr(self.config, section).model_dump(mode="json")
            found = stamp.get(section)
            if found != expected:
                changed = sorted(k for k in expected if not isinstance(found, dict) or found.get(k) != expected[k])
                raise TrainingDataError(
                    f"{root}: the cache was built with other {section} settings ({changed}); "
                    "preprocess again with this config"
                )

    def _load(self, row: ManifestRow) -> Utterance:
        features = read_features(self.cache.feature_path(row.id))
        validate_features(features, self.config)
        conditioning = features.conditioning(self.config)
        audio = load_wav(self.cache.audio_path(row.id), self.config.audio.sample_rate)
        expected = features.n_samples
        if len(audio) != expected:
            raise TrainingDataError(
                f"{self.cache.audio_path(row.id)}: expected {expected} samples ({features.n_frames} frames), "
                f"found {len(audio)}"
            )
        return Utterance(row, conditioning, audio)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def total_seconds(self) -> float:
        return sum(utterance.row.duration for utterance in self.utterances)


class SegmentSampler:
    """Cuts batches of random segments; all randomness comes from one generator whose state is checkpointed."""

    def __init__(self, corpus: TrainingCorpus, context_frames: int, margin_frames: int) -> None:
        self.corpus = corpus
        self.config = corpus.config
        self.context = context_frames
        self.margin = margin_frames

    @staticmethod
    def for_model(corpus: TrainingCorpus, receptive_field: int) -> SegmentSampler:
        hop = corpus.config.features.hop_length
        margin = corpus.config.model.prenet_kernel_size // 2 + 1
        return SegmentSampler(corpus, context_frames=-(-receptive_field // hop), margin_frames=margin)

    @property
    def segment_frames(self) -> int:
        return self.config.train.segment_frames

    def batch(self, indices: list[int], generator: torch.Generator) -> Batch:
        """One segment of each utterance in `indices`, at offsets drawn from `generator`."""
        segments = []
        for index in indices:
            utterance = self.corpus.utterances[index]
            # Starts from 1 - segment_frames on: the ends of an utterance are learnt as often as its middle
            # (starts within the utterance alone put its last frame in 1/segment_frames as many segments).
            start = int(torch.randint(1 - self.segment_frames, len(utterance.conditioning), (1,), generator=generator))
            segments.append(self.segment(utterance, start))
        return self._collate(segments, indices)

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

    def _collate(self, segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]], indices: list[int]) -> Batch:
        frames, audio, mask = (torch.from_numpy(np.stack(parts)) for parts in zip(*segments, strict=True))
        speakers = None
        if self.config.speakers:
            names = [self.corpus.utterances[i].row.speaker for i in indices]
            speakers = torch.tensor([self.config.speaker_id(name) for name in names], dtype=torch.long)
        return Batch(frames, mu_law_encode(audio, self.config.audio.mu), mask, speakers)

    def fixed_batches(self, count: int, batch_size: int, seed: int) -> list[Batch]:
        """The same `count` segments every time: the validation set."""
        generator = torch.Generator().manual_seed(seed)
        indices = [i % len(self.corpus) for i in range(count)]
        return [self.batch(indices[i : i + batch_size], generator) for i in range(0, count, batch_size)]
