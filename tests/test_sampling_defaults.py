"""A model's default sampling (its config's `sampling` section): what unset settings mean in the library, the CLI,
the service and the quality bench; set on a bundled copy without touching its weights."""

from __future__ import annotations

from dataclasses import replace
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
VOICED = {"temperature": 1.3, "voiced_temperature": 0.4}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cool`: a tiny teacher whose card samples at temperature 0.7 among the 20 likeliest classes; `voiced`: one
    sampling voiced frames cooler than the rest; `plain`: the same weights with no sampling section (a model file
    from before the section existed reads the same)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    plain = tiny_config()
    model = WaveNet(plain)
    save_model(root / "plain" / "model.safetensors", model, plain, "teacher", {"steps": 0})
    save_model(root / "cool" / "model.safetensors", model, tiny_config(sampling=COOL), "teacher", {"steps": 0})
    save_model(root / "voiced" / "model.safetensors", model, tiny_config(sampling=VOICED), "teacher", {"steps": 0})
    return root


def with_voicing(frames: int = 8) -> bytes:
    """A feature file whose first half is voiced."""
    vuv = (np.arange(frames) < frames // 2).astype(np.float32)
    return npz_bytes(frames=frames, lf0=np.full(frames, np.log(120.0), np.float32), vuv=vuv)


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


def test_a_voiced_temperature_samples_the_voiced_frames_cooler(models_dir: Path) -> None:
    voiced, plain = vocoder.load(models_dir / "voiced", "cpu"), vocoder.load(models_dir / "plain", "cpu")
    given, mel_only = read_features(with_voicing()), features()
    by_default = voiced.synthesize(given, seed=3)
    assert np.array_equal(by_default, plain.synthesize_batch([given], sampling=Sampling(seed=3, **VOICED))[0])
    assert not np.array_equal(by_default, plain.synthesize(given, seed=3, temperature=1.3))
    assert voiced.ignored_settings(voiced.sampling(), [given])[0] == ()
    # Without the features' voicing every frame takes `temperature`, and the caller is told.
    assert np.array_equal(voiced.synthesize(mel_only, seed=3), plain.synthesize(mel_only, seed=3, temperature=1.3))
    assert voiced.ignored_settings(voiced.sampling(), [mel_only])[0] == ("voiced_temperature",)
    # In a batch, a file without voicing is sampled as unvoiced throughout, the others by their own voicing.
    batch = voiced.synthesize_batch([given, mel_only], sampling=voiced.sampling(seed=3))
    assert np.array_equal(batch[0], by_default)
    # Equal temperatures sample every frame alike: the model's tie turned off.
    alike = voiced.sampling(voiced_temperature=1.3, seed=3)
    assert np.array_equal(
        voiced.synthesize_batch([given], sampling=alike)[0], plain.synthesize(given, seed=3, temperature=1.3)
    )


def test_voicing_must_be_zero_or_one(models_dir: Path) -> None:
    voiced = vocoder.load(models_dir / "voiced", "cpu")
    halves = read_features(npz_bytes(frames=8, lf0=np.zeros(8, np.float32), vuv=np.full(8, 0.5, np.float32)))
    with pytest.raises(VocoderError, match=r"field 'vuv': expected 0 \(unvoiced\) or 1 \(voiced\)"):
        voiced.synthesize(halves)


def test_a_bad_sampling_section_names_its_key() -> None:
    with pytest.raises(ConfigError, match="sampling.temperature"):
        tiny_config(sampling={"temperature": 0})
    with pytest.raises(ConfigError, match="sampling.top_p"):
        tiny_config(sampling={"top_p": 1.5})
    with pytest.raises(ConfigError, match="sampling.voiced_temperature"):
        tiny_config(sampling={"voiced_temperature": 0})
    with pytest.raises(ConfigError, match="sampling.strategy"):
        tiny_config(sampling={"strategy": "argmax"})  # not a default a model can set: a request's choice


def test_settings_parse_with_their_types_and_clear_errors() -> None:
    assert parse_settings("temperature=0.8, top_p=0.9,top_k=5", "--x") == {"temperature": 0.8, "top_p": 0.9, "top_k": 5}
    assert parse_settings("voiced_temperature=0.6", "--x") == {"voiced_temperature": 0.6}
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
    with pytest.raises(VocoderError, match="a student, which has no distribution to reshape: .* not top_p"):
        bundle_model(student, "s", tmp_path / "models", sampling={"temperature": 0.5, "top_p": 0.9})
    quiet = bundle_model(student, "s", tmp_path / "models", sampling={"temperature": 0.5, "voiced_temperature": 0.4})
    assert vocoder.load(quiet, "cpu").default_sampling == Sampling(temperature=0.5, voiced_temperature=0.4)


def test_a_students_temperatures_scale_its_noise_and_the_rest_is_ignored(tmp_path: Path) -> None:
    config = tiny_config(student=STUDENT)
    model_file = save_model(tmp_path / "s" / "model.safetensors", StudentWaveNet(config), config, "student", {})
    student = vocoder.load(model_file, "cpu")
    given = read_features(with_voicing())
    voiced, unvoiced = (replace(given, vuv=np.full_like(given.vuv, flag)) for flag in (1, 0))
    plain, halved = student.synthesize(given, seed=3), student.synthesize(given, seed=3, temperature=0.5)
    assert not np.array_equal(halved, plain)
    # The voiced temperature scales the noise of voiced frames only.
    cooled = student.synthesize(given, seed=3, voiced_temperature=0.5)
    assert not np.array_equal(cooled, plain) and not np.array_equal(cooled, halved)
    assert np.array_equal(
        student.synthesize(voiced, seed=3, voiced_temperature=0.5), student.synthesize(voiced, seed=3, temperature=0.5)
    )
    assert np.array_equal(student.synthesize(unvoiced, seed=3, voiced_temperature=0.5), plain)
    assert student.ignored_settings(student.sampling(temperature=0.5, voiced_temperature=0.4))[0] == ()
    assert student.ignored_settings(student.sampling(strategy="argmax", top_p=0.9)) == (
        ("strategy", "top_p"),
        "a student draws the whole waveform in one pass from noise that only the seed and temperatures set",
    )
    assert student.ignored_settings(student.sampling(voiced_temperature=0.4), [features()])[0] == (
        "voiced_temperature",
    )


def test_the_cli_synthesizes_with_the_models_default(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in.npz").write_bytes(npz_bytes(frames=8))
    out = tmp_path / "out.wav"
    args = ["synthesize", str(tmp_path / "in.npz"), "--out", str(out), "--format", "float", "--seed", "3"]
    result = run(*args, "--model", str(models_dir / "cool"))
    assert result.returncode == 0, result.stderr
    expected = vocoder.load(models_dir / "plain", "cpu").synthesize(features(), seed=3, **COOL)
    assert np.array_equal(decode(out.read_bytes())[0], np.clip(expected, -1, 1))


def test_the_cli_says_when_the_features_carry_no_voicing(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "mel.npz").write_bytes(npz_bytes(frames=8))
    (tmp_path / "voiced.npz").write_bytes(with_voicing())
    for name, note in (("mel", "ignores --voiced-temperature: the features carry no vuv"), ("voiced", None)):
        args = ["synthesize", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / f"{name}.wav"), "--seed", "3"]
        result = run(*args, "--model", str(models_dir / "voiced"), "--voiced-temperature", "0.5")
        assert result.returncode == 0, result.stderr
        assert (note in result.stderr) if note else ("ignores" not in result.stderr)


def test_the_service_lists_and_applies_each_models_default(models_dir: Path) -> None:
    plain = vocoder.load(models_dir / "plain", "cpu")
    with running(models_dir) as client:
        listed = {item["name"]: item["sampling"] for item in client.get("/v1/models").json()["models"]}
        unset = {"voiced_temperature": None, "top_k": None, "top_p": None}
        assert listed["cool"] == {"strategy": "sample", **unset, "temperature": 0.7, "top_k": 20}
        assert listed["plain"] == {"strategy": "sample", **unset, "temperature": 1.0}
        assert listed["voiced"] == {"strategy": "sample", **unset, **VOICED}
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
        # A voiced temperature, the model's or the request's: applied by the file's voicing, named where it has none.
        params = {"model": "voiced", "seed": 3, "format": "float", "voiced_temperature": 0.6}
        tied = client.post("/v1/synthesize", params=params, files=upload(with_voicing()))
        expected = plain.synthesize(read_features(with_voicing()), seed=3, temperature=1.3, voiced_temperature=0.6)
        assert np.array_equal(decode(tied.content)[0], np.clip(expected, -1, 1))
        assert "x-ignored-settings" not in tied.headers
        untied = client.post("/v1/synthesize", params={"model": "voiced"}, files=upload(npz_bytes(frames=8)))
        assert untied.status_code == 200 and untied.headers["x-ignored-settings"] == "voiced_temperature"
        refused = client.post(
            "/v1/synthesize", params={**params, "voiced_temperature": 0}, files=upload(with_voicing())
        )
        assert refused.status_code == 422 and "voiced_temperature" in refused.text
