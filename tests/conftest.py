"""Shared fixtures: tiny configs and models that keep the suite fast on two cores."""

from __future__ import annotations

import copy
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vocoder.config import Config, config_from_dict
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet

torch.set_num_threads(1)
# Every service the suite starts (dozens) starts its JSON parser process from the forkserver, and each such process
# would import the service anew (torch with it: seconds of CPU, in a process that no test's timing shows). Preloaded,
# the forkserver imports it once and each parser process is a ready fork of it; what the parser does is unchanged.
multiprocessing.set_forkserver_preload(["vocoder_server.uploads"])

HEAVY = pytest.mark.xdist_group("heavy")
"""Tests that start several busy processes (torchrun's two ranks, Chromium, the whole recipe, the README as written,
a kernel build): under `pytest -n 2 --dist loadgroup` they all run on one worker, one at a time, so two of them never
share two cores. It marks a test function (on a helper it does nothing)."""

TINY: dict[str, Any] = {
    "name": "tiny",
    "audio": {"sample_rate": 16000, "mu": 255},
    "features": {"conditioning": ["mel"], "hop_length": 40, "win_length": 160, "n_fft": 256, "n_mels": 10},
    "model": {
        "layers": 6,
        "cycles": 2,
        "kernel_size": 2,
        "residual_channels": 8,
        "gate_channels": 12,
        "skip_channels": 16,
        "upsample_scales": [5, 8],
        "speaker_embedding_dim": 4,
    },
    "speakers": ["alice", "bob"],
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def tiny_config(**overrides: Any) -> Config:
    """The tiny test config with nested overrides, e.g. tiny_config(model={"kernel_size": 3})."""
    return config_from_dict(merge(TINY, overrides), "<tiny test config>")


def tone(seconds: float = 0.5, freq: float = 200.0, sample_rate: int = 16000) -> np.ndarray:
    """A harmonic tone with a little noise: voiced speech's simplest stand-in."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    wav = sum(0.3 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 6)) + 0.003 * rng.standard_normal(len(t))
    return wav.astype(np.float32)


@pytest.fixture
def tiny_model_file(tmp_path: Path) -> Path:
    """A randomly initialised tiny teacher saved as a model file."""
    torch.manual_seed(0)
    config = tiny_config()
    return save_model(tmp_path / "tiny" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
