"""The models a service instance serves: every `<name>/model.safetensors` of the models folder, loaded once.

Loading and warm-up run off the event loop at start-up, so `/healthz` answers at once and `/readyz` turns ready
only when every model has loaded and generated a short utterance (the first synthesis pays one-off costs that
a client should not see).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import vocoder
from vocoder.api import Vocoder
from vocoder.features.featurefile import Features
from vocoder.models.checkpoint import WEIGHTS_NAME
from vocoder.vocabulary import MATRIX_ARRAYS, Precision
from vocoder_server.errors import ApiError

log = logging.getLogger("server")

WARMUP_FRAMES = 4


def silent_features(model: Vocoder, frames: int) -> Features:
    """All-zero conditioning of every array the model reads: a valid input of a given length."""
    dims = model.config.feature_array_dims()
    arrays = {
        name: np.zeros((frames, width) if name in MATRIX_ARRAYS else frames, dtype=np.float32)
        for name, width in dims.items()
    }
    speaker = model.config.speakers[0] if model.config.speakers else None
    hop = model.config.features.hop_length
    return Features(model.sample_rate, hop, speaker=speaker, source="warm-up", **arrays)


@dataclass
class Registry:
    """Name -> loaded model; `failures` says which files could not be served and why."""

    models_dir: Path
    device: str | None = None
    precision: Precision = "fp32"
    models: dict[str, Vocoder] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    loaded: bool = False

    @property
    def ready(self) -> bool:
        return self.loaded and bool(self.models) and not self.failures

    def problems(self) -> list[str]:
        if not self.loaded:
            return ["models are loading"]
        if not self.models and not self.failures:
            return [f"no models: no */{WEIGHTS_NAME} under the models folder"]
        return [f"{name}: {reason}" for name, reason in sorted(self.failures.items())]

    def load_all(self, warmup: bool = True) -> None:
        """Blocking: load (and warm up) every model; a file that fails is recorded, not fatal to the others."""
        paths = sorted(self.models_dir.glob(f"*/{WEIGHTS_NAME}")) if self.models_dir.is_dir() else []
        if not paths:  # /readyz names no server path; the operator's log does
            log.error("no */%s under %s (--models, VOCODER_MODELS_DIR)", WEIGHTS_NAME, self.models_dir.absolute())
        for path in paths:
            name = path.parent.name
            began = time.perf_counter()
            try:
                model = vocoder.load(path, self.device, self.precision)
                if warmup:
                    model.synthesize(silent_features(model, WARMUP_FRAMES), strategy="argmax")
            except Exception as error:  # any failure of one file is recorded; the other models still serve
                log.error("model %s not served: %s", name, error)
                self.failures[name] = str(error).replace(str(self.models_dir), "<models>")
                continue
            self.models[name] = model
            log.info("model %s loaded on %s in %.1f s", name, model.device, time.perf_counter() - began)
        self.loaded = True

    def resolve(self, name: str | None, default: str, reads: str | None = None) -> Vocoder:
        """The model a request names; with no name, the only model (the only one that reads `reads` features,
        where the route makes those) or else the configured default."""
        if name is None:
            candidates = [m for m in self.models.values() if reads is None or reads in m.config.features.conditioning]
            if len(candidates) == 1:
                return candidates[0]
            name = default
        model = self.models.get(name)
        if model is None:
            served = sorted(self.models)
            raise ApiError(422, "unknown_model", f"model: {name!r} is not served; one of {served}", "model")
        return model
