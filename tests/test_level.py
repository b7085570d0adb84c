"""The input level: a model records the band of mel levels it was trained on, and synthesis keeps to it."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from tests.conftest import tiny_config, tone
from tests.test_train import build_cache, train_config
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.level import METADATA_KEY, InputLevels, mel_level_db, scaled
from vocoder.generate import Sampling
from vocoder.models.bundle import bundle_model
from vocoder.models.checkpoint import read_model_header, replace_header, save_model
from vocoder.models.wavenet import WaveNet
from vocoder.train.trainer import Trainer

LOG_FLOOR = tiny_config().features.log_floor


def tone_features(gain_db: float = 0.0, seconds: float = 0.3):
    """The tiny config's features of a tone (peak about 0.7) scaled by `gain_db`, as extraction finds them."""
    return extract_features(tone(seconds) * np.float32(10 ** (gain_db / 20)), tiny_config(), speaker="alice")


def test_a_recording_scaled_by_g_has_its_level_moved_by_g_and_scaled_features_are_its_features() -> None:
    loud, quiet = tone_features(), tone_features(-30.0)
    assert mel_level_db(loud.mel) - mel_level_db(quiet.mel) == pytest.approx(30.0, abs=0.01)
    moved = scaled(quiet, 10 ** (30 / 20), LOG_FLOOR)  # what extraction finds for the louder recording
    above_floor = quiet.mel > math.log(LOG_FLOOR) + 0.1  # where the quiet recording's mel was not clipped
    assert above_floor.mean() > 0.5 and np.allclose(moved.mel[above_floor], loud.mel[above_floor], atol=1e-3)
    floor = math.log(LOG_FLOOR)
    assert scaled(loud, 1e-9, LOG_FLOOR).mel.min() == pytest.approx(floor)  # clipped at the floor, as extracted
    assert scaled(loud, 1.0, LOG_FLOOR) is loud
    assert mel_level_db(np.zeros((0, 10), np.float32)) == -math.inf


def test_the_band_spans_the_training_levels_and_the_gain_augmentation() -> None:
    levels = InputLevels.of_training(list(np.linspace(0.0, 10.0, 101)), gain_db=12.0, headroom_db=0.36)
    assert (levels.low, levels.middle, levels.high) == pytest.approx((0.5 - 12.0, 5.0 - 6.0, 9.5 + 0.36), abs=0.01)
    assert InputLevels.of_training([3.0], gain_db=0.0, headroom_db=0.36) == InputLevels(3.0, 3.0, 3.0)
    assert InputLevels.from_metadata(levels.to_metadata()) == levels
    assert InputLevels.from_metadata({"steps": 3}) is None
    with pytest.raises(ValueError, match="no utterance levels"):
        InputLevels.of_training([], gain_db=12.0, headroom_db=0.36)
    for damaged in ({"low": 1.0, "middle": 2.0}, {"low": 3.0, "middle": 2.0, "high": 4.0}, [1, 2, 3]):
        with pytest.raises(VocoderError, match="input_level_db.*low <= middle <= high"):
            InputLevels.from_metadata({METADATA_KEY: damaged})


def test_an_utterance_outside_the_band_is_moved_to_its_middle_and_one_inside_is_left() -> None:
    features = tone_features()
    level = mel_level_db(features.mel)
    inside = InputLevels(level - 5, level + 1, level + 5)
    assert inside.gain(features) == 1.0
    below = InputLevels(level + 10, level + 20, level + 30)
    assert mel_level_db(scaled(features, below.gain(features), LOG_FLOOR).mel) == pytest.approx(level + 20, abs=0.01)
    above = InputLevels(level - 30, level - 20, level - 10)
    assert 20 * math.log10(above.gain(features)) == pytest.approx(-20.0)
    assert below.gain(replace(features, mel=None, linguistic=np.zeros((4, 3), np.float32))) == 1.0


@pytest.fixture
def banded_model(tiny_model_file: Path) -> vocoder.Vocoder:
    """The tiny teacher recording a band of input levels around its tone's level (peak 0.7)."""
    level = mel_level_db(tone_features().mel)
    metadata = read_model_header(tiny_model_file)[2] | InputLevels(level - 12, level - 3, level + 1).to_metadata()
    replace_header(tiny_model_file, metadata=metadata)
    return vocoder.load(tiny_model_file, device="cpu")


def test_synthesis_conditions_a_quiet_utterance_in_the_band_and_keeps_its_level(banded_model) -> None:
    quiet, quieter = tone_features(-30.0), tone_features(-40.0)
    moved, gain = banded_model.at_trained_level(quiet)
    moved_further, further_gain = banded_model.at_trained_level(quieter)
    assert 20 * math.log10(further_gain / gain) == pytest.approx(10.0, abs=0.01)  # both to the band's middle
    unclipped = quieter.mel > math.log(LOG_FLOOR) + 0.1
    assert np.allclose(moved.mel[unclipped], moved_further.mel[unclipped], atol=1e-3)
    synthesized = banded_model.synthesize(quiet, seed=3)
    banded_model.input_levels = None  # the features as given: the model's synthesis of what it was conditioned on
    assert np.array_equal(synthesized, banded_model.synthesize(moved, seed=3) / gain)


def test_an_utterance_inside_the_band_is_synthesized_as_given(banded_model) -> None:
    features = tone_features(-6.0)
    assert banded_model.at_trained_level(features) == (features, 1.0)
    synthesized = banded_model.synthesize_batch([features, tone_features(-30.0)], sampling=Sampling(seed=1))[0]
    banded_model.input_levels = None
    assert np.array_equal(synthesized, banded_model.synthesize(features, seed=1))


def test_a_stream_of_a_quiet_utterance_is_its_whole_waveform(banded_model) -> None:
    quiet = tone_features(-30.0, seconds=0.5)
    chunks = list(banded_model.synthesize_stream(quiet, Sampling(seed=4), chunk_samples=512))
    assert len(chunks) > 1
    assert np.array_equal(np.concatenate(chunks), banded_model.synthesize(quiet, seed=4))


def test_a_training_run_records_its_band_and_a_bundle_fills_an_older_model_files(tmp_path: Path) -> None:
    config = train_config(max_steps=1)
    data = build_cache(tmp_path / "cache", config)
    trainer = Trainer(config, data, tmp_path / "run", "cpu")
    trainer.run()
    model_file = tmp_path / "run" / "model" / "model.safetensors"
    recorded = InputLevels.from_metadata(read_model_header(model_file)[2])
    assert recorded == trainer.corpus.input_levels() and recorded.low < recorded.middle < recorded.high
    assert vocoder.load(model_file, device="cpu").input_levels == recorded

    older = tmp_path / "older" / "model.safetensors"  # written before model files recorded a band
    torch.manual_seed(0)
    save_model(older, WaveNet(config), config, "teacher", {"steps": 1})
    assert bundle_model(older, "as-given", tmp_path / "models").joinpath("model.safetensors").exists()
    assert METADATA_KEY not in read_model_header(tmp_path / "models" / "as-given" / "model.safetensors")[2]
    target = bundle_model(older, "teacher", tmp_path / "models", [data])
    bundled = read_model_header(target / "model.safetensors")[2]
    assert InputLevels.from_metadata(bundled) == recorded and bundled["steps"] == 1
    assert f"trained on mel levels {recorded.low:.1f} to {recorded.high:.1f} dB" in (target / "README.md").read_text()
