"""The input level a model was trained at, and synthesis that keeps to it.

`vocoder preprocess` peak-normalises every training utterance and training varies its gain by at most
`train.gain_db` (the mel moved with it, never above full scale), so a model meets only a band of mel levels. Far
below that band (a quiet microphone, a file at -30 dBFS) its output falls apart: measured on held-out recordings
36 dB down, the step-17,000 teacher's PESQ-WB dropped from 1.47 to 1.15 and its student's DNSMOS from 2.52 to 1.70,
while Griffin-Lim's held (docs/BENCHMARKS.md, "Input level"). A model file records its band (`InputLevels`,
metadata `input_level_db`); synthesis moves an utterance outside it to the band's middle by adding `ln g` to its
log-mel, which is exactly the mel of the recording scaled by g down to the log floor, and divides the output by g,
so the output keeps the input's level and an utterance inside the band is synthesized as given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.featurefile import Features

METADATA_KEY = "input_level_db"
LOUD_PERCENTILE = 95
"""An utterance's level is that of its loud frames: the 95th percentile of frame power, so one click does not set it."""


def mel_level_db(log_mel: np.ndarray) -> float:
    """The level of `[frames, n_mels]` natural-log mel magnitudes: the 95th percentile over frames of the frame's
    mel power (its bands' squared magnitudes summed), in dB. Its unit is the config's mel scale: compare levels
    of one model's features only. -inf for a mel of no frames."""
    if not len(log_mel):
        return -math.inf
    power = np.exp(2.0 * log_mel.astype(np.float64)).sum(axis=1)
    return float(10.0 * np.log10(np.percentile(power, LOUD_PERCENTILE)))


@dataclass(frozen=True)
class InputLevels:
    """The band of mel levels (`mel_level_db`) a model was trained on, and the level it conditions an utterance
    outside it at."""

    low: float
    middle: float
    high: float

    @classmethod
    def of_training(cls, levels: list[float], gain_db: float, headroom_db: float) -> InputLevels:
        """The band a training set spans: its utterances' levels from the 5th to the 95th percentile, widened by
        the gain augmentation (down `gain_db`, up by at most `headroom_db`, what it leaves below full scale); the
        middle is the median level moved down by half the augmentation, the middle of what training showed."""
        if not levels:
            raise ValueError("no utterance levels to take a band from")
        low, median, high = np.percentile(levels, [5, 50, 95])
        return cls(
            low=round(float(low) - gain_db, 2),
            middle=round(float(median) - gain_db / 2, 2),
            high=round(float(high) + min(gain_db, headroom_db), 2),
        )

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> InputLevels | None:
        """A model file's band, None for a file written before models recorded one (synthesis then takes its
        features as given)."""
        band = metadata.get(METADATA_KEY)
        if band is None:
            return None
        edges = [band.get(name) if isinstance(band, dict) else None for name in ("low", "middle", "high")]
        if not all(isinstance(edge, int | float) and math.isfinite(edge) for edge in edges) or edges != sorted(edges):
            raise VocoderError(
                f"model metadata '{METADATA_KEY}': expected finite numbers low <= middle <= high, found {band!r}"
            )
        return cls(*(float(edge) for edge in edges))

    def to_metadata(self) -> dict[str, dict[str, float]]:
        return {METADATA_KEY: {"low": self.low, "middle": self.middle, "high": self.high}}

    def gain(self, features: Features) -> float:
        """The factor g by which an utterance's recording would have to be scaled to lie in the band's middle,
        1 where it lies inside the band or has no mel (linguistic features)."""
        if features.mel is None:
            return 1.0
        level = mel_level_db(features.mel)
        if not math.isfinite(level) or self.low <= level <= self.high:
            return 1.0
        return 10.0 ** ((self.middle - level) / 20.0)


def scaled(features: Features, gain: float, log_floor: float) -> Features:
    """The features of the recording scaled by `gain`: its log-mel moved by `ln gain`, clipped at the floor as
    extraction clips it (F0 and voicing do not depend on the level)."""
    if gain == 1.0 or features.mel is None:
        return features
    moved = np.maximum(features.mel + np.float32(math.log(gain)), np.float32(math.log(log_floor)))
    return replace(features, mel=moved.astype(np.float32))
