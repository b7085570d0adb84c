"""Shared fixtures: tiny configs and models that keep the suite fast on two cores.

Under `pytest -n 2` the controlling process loads this file too and runs no test, so torch and the project are
imported where they are used (seconds of CPU, and of the wait before the first test, otherwise)."""

from __future__ import annotations

import copy
import hashlib
import multiprocessing
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    import torch

    from vocoder.config import Config
    from vocoder.generate import GenerationResult, Sampling, StepTemperatures
    from vocoder.models.wavenet import WaveNet


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread in each process that runs tests (a test that wants more asks for them). Without CUDA, Triton
    kernels can only run under Triton's interpreter: `TRITON_INTERPRET=1` (unless set otherwise), before anything
    imports triton, which reads it then (tests/test_triton_kernel.py; the load of a model imports triton too)."""
    if config.getoption("numprocesses", None):  # xdist's controller: its workers run the tests
        return
    import torch

    torch.set_num_threads(1)
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


# Every service the suite starts (dozens) starts its JSON parser process from the forkserver, and each such process
# would import the parser's module anew (0.4 s of CPU, in a process that no test's timing shows). Preloaded, the
# forkserver imports it once and each parser process is a ready fork of it; what the parser does is unchanged.
multiprocessing.set_forkserver_preload(["vocoder_server.json_body"])

HEAVY = pytest.mark.xdist_group("heavy")
"""Tests that start several busy processes (torchrun's two ranks, Chromium, the whole recipe, the README as written,
a kernel build): under `pytest -n 2 --dist loadgroup` they all run on one worker, one at a time, so two of them never
share two cores. It marks a test function (on a helper it does nothing)."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under `--dist loadgroup` xdist names each test of a group `<id>@<group>` and schedules by that name; where it
    cannot (pytest 9.2: pytest-dev/pytest-xdist#1386) the groups are dropped without a word, and HEAVY tests would
    share the two cores. A grouped test fails then, saying so."""
    if item.config.getoption("loadgroup", False) and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            f"pytest {pytest.__version__} drops xdist_group under --dist loadgroup (pytest-dev/pytest-xdist#1386): "
            "install the pytest that pyproject.toml pins (make install)",
            pytrace=False,
        )


FESTIVAL_FIXTURES = frozenset({"festival_dir", "festival_utterances", "demo_corpus"})
"""The session fixtures of tests/festival_fixtures.py: each runs Festival (about 2 s of CPU)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a Festival session fixture (and no group of their own) form the group `festival`: under
    `--dist loadgroup` they run on one worker, so each fixture is made once, not once per worker. Before xdist's
    hook, which names each grouped test `<id>@<group>`."""
    for item in items:
        if FESTIVAL_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("festival"))


NAIVE_GROUP = pytest.mark.xdist_group("naive")
"""Tests that compare a generator with a naive reference another test compares with too (`naive_reference` computes
each once per process): under `--dist loadgroup` they run on one worker, so each reference is computed once."""

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
    from vocoder.config import config_from_dict

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
    import torch

    from vocoder.models.checkpoint import save_model
    from vocoder.models.wavenet import WaveNet

    torch.manual_seed(0)
    config = tiny_config()
    return save_model(tmp_path / "tiny" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})


NAIVE_STEPS = 320
"""Samples per utterance of the tiny generator-vs-naive cases: ten times the tiny models' receptive fields (16 and 31
samples), so every ring buffer (at most 9 samples) wraps dozens of times, and within one kernel block (the blocks and
conditioning tiles have tests of their own). The naive reference costs about 1.5 ms of CPU per step, the suite's
costliest computation: no longer than that."""


def model_and_inputs(
    kernel_size: int, speakers: list[str], batch: int = 2, steps: int = NAIVE_STEPS, **model: int
) -> tuple[WaveNet, torch.Tensor, torch.Tensor | None]:
    """A random tiny teacher (seeded by `kernel_size`), its upsampled conditioning `[batch, 10, steps]` from random
    frames, and speaker ids alternating 0, 1 (None without speakers); `model` overrides the model section."""
    import torch

    from vocoder.models.wavenet import WaveNet

    torch.manual_seed(kernel_size)
    config = tiny_config(
        model={"kernel_size": kernel_size, "input_kernel_size": kernel_size, **model}, speakers=speakers
    )
    network = WaveNet(config).eval()
    with torch.no_grad():
        local = network.upsample(torch.randn(batch, steps // 40, 10))
    speaker_ids = torch.arange(batch) % 2 if speakers else None
    return network, local, speaker_ids


def random_voicing(model: WaveNet, local: torch.Tensor, sampling: Sampling, seed: int = 0) -> StepTemperatures:
    """A voicing-tied `sampling`'s per-step temperatures for `local [B, C, T]`, from frames drawn voiced or unvoiced
    at random (seeded)."""
    import torch

    hop = model.config.features.hop_length
    frames = -(-local.shape[-1] // hop)
    voicing = torch.rand(local.shape[0], frames, generator=torch.Generator().manual_seed(seed)) < 0.5
    temperatures = sampling.step_temperatures(voicing, hop)
    assert temperatures is not None, "a sampling with a voiced_temperature"
    return temperatures


_naive_references: dict[str, GenerationResult] = {}


def naive_reference(
    model: WaveNet,
    local: torch.Tensor,
    speaker_ids: torch.Tensor | None,
    sampling: Sampling,
    uniforms: torch.Tensor,
    lpc: torch.Tensor | None = None,
    temperatures: StepTemperatures | None = None,
) -> GenerationResult:
    """`generate_naive` with its logits recorded, computed once per process for equal inputs (a digest of the
    model's config and weights, the sampling and every input tensor) and returned as a copy: several tests of the
    fast generators compare with the same reference, the suite's costliest computation."""
    from vocoder.generate import GenerationResult, generate_naive

    digest = hashlib.sha1(repr((model.config, sampling)).encode())
    stepwise = None if temperatures is None else temperatures.whole()
    for tensor in (*model.state_dict().values(), local, speaker_ids, uniforms, lpc, stepwise):
        digest.update(repr(None if tensor is None else (tensor.dtype, tuple(tensor.shape))).encode())
        if tensor is not None:
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    key = digest.hexdigest()
    if key not in _naive_references:
        _naive_references[key] = generate_naive(
            model, local, speaker_ids, sampling, uniforms, record_logits=True, lpc=lpc, temperatures=temperatures
        )
    reference = _naive_references[key]
    assert reference.logits is not None
    return GenerationResult(reference.waveform.clone(), reference.ids.clone(), reference.logits.clone())
