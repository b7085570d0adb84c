"""A model's default sampling (its config's `sampling` section): what unset settings mean in the library, the CLI,
the service and the quality bench; set on a bundled copy without touching its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vocoder
from tests.conftest import tiny_config
from tests.test_cli import run
from tests.test_server import decode, running
from tests.test_server_support import npz_bytes, upload
from tests.test_student import STUDENT
from vocoder.config import ConfigError
from vocoder.errors import VocoderError
from vocoder.features.featurefile import read_features
from vocoder.generate import Sampling
from vocoder.generate.sampling import SamplingError, parse_settings
from vocoder.models.bundle import bundle_model
from vocoder.models.checkpoint import read_model_header, save_model
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet

COOL = {"temperature": 0.7, "top_k": 20}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cool`: a tiny teacher whose card samples at temperature 0.7 among the 20 likeliest classes; `plain`: the
    same weights with no sampling section (a model file from before the section existed reads the same)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    plain = tiny_config()
    model = WaveNet(plain)
    save_model(root / "plain" / "model.safetensors", model, plain, "teacher", {"steps": 0})
    save_model(root / "cool" / "model.safetensors", model, tiny_config(sampling=COOL), "teacher", {"steps": 0})
    return root


def features(frames: int = 8):
    return read_features(npz_bytes(frames=frames))


def test_unset_settings_take_the_models_defaults_field_by_field(models_dir: Path) -> None:
    cool, plain = vocoder.load(models_dir / "cool", "cpu"), vocoder.load(models_dir / "plain", "cpu")
    assert cool.default_sampling == Sampling(**COOL) and plain.default_sampling == Sampling()
    given = features()
    by_default = cool.synthesize(given, seed=3)
    assert np.array_equal(by_default, plain.synthesize_batch([given], sampling=Sampling(seed=3, **COOL))[0])
    assert not np.array_equal(by_default, plain.synthesize(given, seed=3))  # the default does change the audio
    assert np.array_equal(cool.synthesize_batch([given], sampling=None)[0].shape, by_default.shape)
    # One setting given: the model's others stay (temperature 1 with its top-k 20, not plain sampling).
    assert cool.sampling(temperature=1.0, seed=3) == Sampling(temperature=1.0, top_k=20, seed=3)
    assert np.array_equal(
        cool.synthesize(given, seed=3, temperature=1.0),
        plain.synthesize(given, seed=3, temperature=1.0, top_k=20),
    )
    # The model's truncation is turned off by its neutral values.
    untruncated = cool.sampling(temperature=1.0, top_k=plain.config.audio.classes, seed=3)
    assert np.array_equal(cool.synthesize_batch([given], sampling=untruncated)[0], plain.synthesize(given, seed=3))


def test_ignored_settings_are_those_the_caller_changed_not_the_models_defaults(models_dir: Path) -> None:
    cool = vocoder.load(models_dir / "cool", "cpu")
    assert cool.ignored_settings(cool.sampling(strategy="argmax"))[0] == ()
    assert cool.ignored_settings(cool.sampling(strategy="argmax", temperature=0.5))[0] == ("temperature",)


def test_a_bad_sampling_section_names_its_key() -> None:
    with pytest.raises(ConfigError, match="sampling.temperature"):
        tiny_config(sampling={"temperature": 0})
    with pytest.raises(ConfigError, match="sampling.top_p"):
        tiny_config(sampling={"top_p": 1.5})
    with pytest.raises(ConfigError, match="sampling.strategy"):
        tiny_config(sampling={"strategy": "argmax"})  # not a default a model can set: a request's choice


def test_settings_parse_with_their_types_and_clear_errors() -> None:
    assert parse_settings("temperature=0.8, top_p=0.9,top_k=5", "--x") == {"temperature": 0.8, "top_p": 0.9, "top_k": 5}
    assert parse_settings("", "--x") == {}
    with pytest.raises(SamplingError, match=r"--x: expected SETTING=VALUE .* found 'warmth=2'"):
        parse_settings("warmth=2", "--x")
    with pytest.raises(SamplingError, match="--x: top_k expects a int, found '0.5'"):
        parse_settings("top_k=0.5", "--x")


def test_bundling_sets_the_default_sampling_and_keeps_the_weights(models_dir: Path, tmp_path: Path) -> None:
    source = models_dir / "plain" / "model.safetensors"
    target = bundle_model(source, "warm", tmp_path / "models", sampling={"temperature": 0.8})
    bundled = target / "model.safetensors"
    assert read_model_header(bundled)[0].sampling.temperature == 0.8
    before, after = load_file(source), load_file(bundled)
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
    assert read_model_header(bundled)[2] == read_model_header(source)[2]  # metadata kept
    assert (
        "| default sampling | temperature 0.8 (a request's own settings replace it) |"
        in (target / "README.md").read_text()
    )
    assert read_model_header(source)[0].sampling.temperature == 1.0  # the source file is untouched
    with pytest.raises(ConfigError, match="sampling.temperature"):
        bundle_model(source, "hot", tmp_path / "models", sampling={"temperature": -1.0})
    assert not (tmp_path / "models" / "hot").exists()  # refused before anything is written
    config = tiny_config(student=STUDENT)
    student = save_model(tmp_path / "s.safetensors", StudentWaveNet(config), config, "student", {"steps": 0})
    with pytest.raises(VocoderError, match="a student, which has no distribution to reshape"):
        bundle_model(student, "s", tmp_path / "models", sampling={"temperature": 0.8})


def test_the_cli_synthesizes_with_the_models_default(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in.npz").write_bytes(npz_bytes(frames=8))
    out = tmp_path / "out.wav"
    args = ["synthesize", str(tmp_path / "in.npz"), "--out", str(out), "--format", "float", "--seed", "3"]
    result = run(*args, "--model", str(models_dir / "cool"))
    assert result.returncode == 0, result.stderr
    expected = vocoder.load(models_dir / "plain", "cpu").synthesize(features(), seed=3, **COOL)
    assert np.array_equal(decode(out.read_bytes())[0], np.clip(expected, -1, 1))


def test_the_service_lists_and_applies_each_models_default(models_dir: Path) -> None:
    plain = vocoder.load(models_dir / "plain", "cpu")
    with running(models_dir) as client:
        listed = {item["name"]: item["sampling"] for item in client.get("/v1/models").json()["models"]}
        assert listed["cool"] == {"strategy": "sample", "temperature": 0.7, "top_k": 20, "top_p": None}
        assert listed["plain"] == {"strategy": "sample", "temperature": 1.0, "top_k": None, "top_p": None}
        params = {"model": "cool", "seed": 3, "format": "float"}
        response = client.post("/v1/synthesize", params=params, files=upload(npz_bytes(frames=8)))
        assert response.status_code == 200, response.text
        expected = plain.synthesize(features(), seed=3, **COOL)
        assert np.array_equal(decode(response.content)[0], np.clip(expected, -1, 1))
        hot = client.post("/v1/synthesize", params={**params, "temperature": 1.0}, files=upload(npz_bytes(frames=8)))
        expected = plain.synthesize(features(), seed=3, temperature=1.0, top_k=20)
        assert np.array_equal(decode(hot.content)[0], np.clip(expected, -1, 1))
        argmax = client.post(
            "/v1/synthesize", params={"model": "cool", "strategy": "argmax"}, files=upload(npz_bytes(frames=8))
        )
        assert argmax.status_code == 200 and "x-ignored-settings" not in argmax.headers
