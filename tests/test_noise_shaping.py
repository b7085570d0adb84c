"""Noise shaping (pre-emphasis / de-emphasis) in every path that touches waveforms, and the training-time levers
for real speech: noise injection into the past input, gain and spectral-tilt augmentation that the mel follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

import vocoder
from tests.conftest import tiny_config, tone
from tests.test_train import TRAIN, build_cache
from vocoder.audio import Deemphasis, deemphasize, mu_law_encode, preemphasize
from vocoder.config import ConfigError
from vocoder.features.acoustic import log_mel
from vocoder.generate import Sampling
from vocoder.models.checkpoint import save_model
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.train.data import Augmentation, SegmentSampler, TrainingCorpus
from vocoder.train.trainer import Trainer

EXAMPLE_FRAMES = 15
"""Frames of the synthesized examples: 600 samples, streamed in 7 chunks of 97 or less; the naive path twice."""


def shaped_config(**train: object):
    return tiny_config(audio={"preemphasis": 0.85}, speakers=[], train={**TRAIN, **train})


def test_preemphasis_is_the_first_difference_and_deemphasis_undoes_it() -> None:
    wav = tone(0.1)
    shaped = preemphasize(wav, 0.85)
    np.testing.assert_allclose(shaped[1:], wav[1:] - 0.85 * wav[:-1], atol=1e-6)
    assert shaped[0] == pytest.approx(wav[0])
    np.testing.assert_allclose(deemphasize(shaped, 0.85), wav, atol=1e-5)
    assert preemphasize(wav, 0.0) is wav  # off: old models see exactly what they were trained on


def test_deemphasis_in_chunks_equals_the_whole_for_every_row() -> None:
    rows = np.stack([tone(0.05, 150), tone(0.05, 300)])
    whole = deemphasize(rows, 0.85)
    stream = Deemphasis(0.85, rows=2)
    chunked = np.concatenate([stream(rows[:, start : start + 97]) for start in range(0, rows.shape[1], 97)], axis=1)
    np.testing.assert_array_equal(chunked, whole)


def test_noise_shaping_moves_quantisation_noise_out_of_the_quiet_high_band() -> None:
    """The point of it: 8-bit error made on the pre-emphasised signal comes out low-passed by the de-emphasis."""
    wav = tone(1.0, 120) * 0.5
    errors = {}
    for coefficient in (0.0, 0.85):
        shaped = preemphasize(wav, coefficient)
        ids = mu_law_encode(torch.from_numpy(shaped))
        decoded = vocoder.audio.mu_law_decode(ids).numpy()
        errors[coefficient] = deemphasize(decoded, coefficient) - wav
    high = {}
    for coefficient, error in errors.items():
        freqs, power = signal.welch(error, 16000, nperseg=512)
        high[coefficient] = power[freqs > 4000].mean()
    assert high[0.85] < high[0.0] / 4  # at least 6 dB less noise above 4 kHz


def test_old_configs_default_to_no_preemphasis_and_bad_values_are_refused() -> None:
    assert tiny_config().audio.preemphasis == 0.0
    with pytest.raises(ConfigError, match="audio.preemphasis"):
        tiny_config(audio={"preemphasis": 1.0})
    with pytest.raises(ConfigError, match="only mel conditioning"):
        tiny_config(features={"conditioning": ["lf0", "vuv"]}, train={"gain_db": 6.0})


def test_feature_caches_do_not_depend_on_preemphasis() -> None:
    """One cache serves models with and without noise shaping: pre-emphasis is applied when training reads it."""
    assert tiny_config().audio.cache_stamp() == shaped_config().audio.cache_stamp()


@pytest.fixture(scope="module")
def shaped_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = shaped_config()
    path = tmp_path_factory.mktemp("shaped") / "model.safetensors"
    return save_model(path, WaveNet(config), config, "teacher", {"steps": 0})


def _features(model: vocoder.Vocoder) -> vocoder.Features:
    from vocoder.features.acoustic import extract_features

    wav = tone(EXAMPLE_FRAMES * model.config.features.hop_length / 16000)
    return extract_features(wav, model.config)


def test_every_teacher_path_de_emphasises_its_output(shaped_model: Path) -> None:
    model = vocoder.load(shaped_model, "cpu")
    features = _features(model)
    sampling = Sampling(seed=3)
    raw = model.generate([model.features(features)], "naive", sampling).waveform[0].numpy()
    expected = deemphasize(raw, 0.85)
    for method in ("naive", "fast", "fast-torch"):
        np.testing.assert_allclose(model.synthesize(features, method=method, seed=3), expected, atol=1e-6)
    streamed = np.concatenate(list(model.synthesize_stream(features, sampling, chunk_samples=97)))
    np.testing.assert_array_equal(streamed, model.synthesize(features, seed=3))


def test_a_student_of_a_shaped_teacher_is_de_emphasised_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = shaped_config().model_copy(update={"student": _student_section()})
    path = save_model(tmp_path / "student.safetensors", StudentWaveNet(config), config, "student", {"steps": 0})
    model = vocoder.load(path, "cpu")
    features = _features(model)
    raw = model.generate([model.features(features)], "student", Sampling(seed=1)).waveform[0].numpy()
    np.testing.assert_allclose(model.synthesize(features, seed=1), deemphasize(raw, 0.85), atol=1e-6)


def _student_section():
    from vocoder.config import StudentConfig

    return StudentConfig(flows=[2, 2], residual_channels=8, gate_channels=8, skip_channels=8, conditioning_channels=8)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("cache"), tiny_config())


def test_training_targets_are_the_preemphasised_audio(cache_dir: Path) -> None:
    plain = TrainingCorpus(cache_dir, tiny_config(train=TRAIN), "train")
    shaped = TrainingCorpus(cache_dir, shaped_config(), "train")
    for a, b in zip(plain.utterances, shaped.utterances, strict=True):
        np.testing.assert_allclose(b.audio, preemphasize(a.audio, 0.85), atol=1e-7)
    sampler = SegmentSampler(shaped, context_frames=2, margin_frames=1)
    batch = sampler.batch([0], torch.Generator().manual_seed(0))
    assert batch.inputs is None and batch.past is batch.targets  # no noise unless asked for


def test_noise_injection_perturbs_only_the_past_input(cache_dir: Path) -> None:
    config = shaped_config(input_noise=2.0)
    corpus = TrainingCorpus(cache_dir, config, "train")
    clean = SegmentSampler(corpus, 2, 1).batch([0, 1], torch.Generator().manual_seed(5))
    noisy = SegmentSampler(corpus, 2, 1, augment=True).batch([0, 1], torch.Generator().manual_seed(5))
    torch.testing.assert_close(noisy.targets, clean.targets)  # the model still learns the clean signal
    difference = (noisy.inputs - noisy.targets).float()
    assert 0 < difference.abs().mean() < 2.0
    assert difference.abs().max() <= 12  # Gaussian of at most 2 classes, rounded
    assert noisy.inputs.min() >= 0 and noisy.inputs.max() <= 255
    # validation batches stay clean
    assert SegmentSampler(corpus, 2, 1).fixed_batches(2, 2, seed=0)[0].inputs is None


def test_augmentation_gain_moves_the_mel_exactly_and_tilt_closely() -> None:
    config = tiny_config(train={**TRAIN, "gain_db": 12.0, "tilt": 0.375})
    augmentation = Augmentation(config)
    wav = tone(0.3, 180) * 0.4 + 0.05 * np.random.default_rng(1).standard_normal(4800).astype(np.float32)
    features = config.features
    mel = log_mel(wav, 16000, features)
    frames, audio = mel.copy(), wav.copy()
    augmentation(frames, audio, torch.Generator().manual_seed(7))
    assert np.max(np.abs(audio)) <= Augmentation.PEAK + 1e-6
    assert not np.allclose(audio, wav)
    recomputed = log_mel(audio, 16000, features)
    inner = slice(2, -2)  # the filter's start-up transient touches the first frames
    loud = mel[inner] > np.log(features.log_floor) + 3
    error = np.abs(recomputed[inner] - frames[inner])[loud]
    assert np.median(error) < 0.15  # nats; without the mel correction the error is the whole gain and tilt
    assert np.median(np.abs(recomputed[inner] - mel[inner])[loud]) > 3 * np.median(error)


def test_augmented_training_resumes_exactly(cache_dir: Path, tmp_path: Path) -> None:
    """Augmentation and noise draw from the checkpointed data generator: a resumed run is the same run."""
    train = {"max_steps": 8, "input_noise": 1.5, "gain_db": 6.0, "tilt": 0.3}
    config = shaped_config(**train)
    whole = Trainer(config, cache_dir, tmp_path / "whole", "cpu")
    whole.run()
    first = Trainer(config, cache_dir, tmp_path / "split", "cpu", max_steps=4)
    first.run()
    second = Trainer(config, cache_dir, tmp_path / "split", "cpu", resume=True)
    second.run()
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_a_student_must_share_its_teachers_signal_domain(shaped_model: Path) -> None:
    """The teacher's density is over the pre-emphasised signal: a student distilled against it must produce that
    signal too (and its spectral losses compare pre-emphasised audio), so the audio sections must agree."""
    from vocoder.errors import VocoderError
    from vocoder.train.distill import load_teacher

    student = _student_section()
    assert load_teacher(shaped_model, shaped_config().model_copy(update={"student": student})) is not None
    plain = tiny_config(speakers=[], train=TRAIN).model_copy(update={"student": student})
    with pytest.raises(VocoderError, match="'audio' section differs"):
        load_teacher(shaped_model, plain)
