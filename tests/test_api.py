from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from tests.conftest import tiny_config, tone
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import FeatureFileError, save_features
from vocoder.generate import Sampling


@pytest.fixture
def features_file(tmp_path: Path) -> Path:
    """800 samples: 50 receptive fields of the tiny teacher, each naive synthesis of it under a second of CPU."""
    features = extract_features(tone(0.05), tiny_config(), speaker="alice", source="tone")
    return save_features(tmp_path / "tone.npz", features)


def test_synthesize_from_a_feature_file(tiny_model_file: Path, features_file: Path) -> None:
    model = vocoder.load(tiny_model_file, device="cpu")
    assert model.sample_rate == 16000
    wav = model.synthesize(features_file, seed=1)
    assert wav.dtype == np.float32 and wav.shape == (800,)
    assert np.array_equal(wav, model.synthesize(features_file, seed=1))
    assert np.array_equal(wav, model.synthesize(features_file, method="naive", seed=1))
    assert not np.array_equal(wav, model.synthesize(features_file, seed=2))


def test_synthesize_accepts_loaded_features_and_speaker_override(tiny_model_file: Path, features_file: Path) -> None:
    model = vocoder.load(tiny_model_file, device="cpu")
    loaded = model.features(features_file)
    as_alice = model.synthesize(loaded, strategy="argmax")
    as_bob = model.synthesize(loaded, strategy="argmax", speaker="bob")
    assert as_alice.shape == as_bob.shape and not np.array_equal(as_alice, as_bob)


def test_batch_trims_each_utterance_to_its_length(tiny_model_file: Path, tmp_path: Path) -> None:
    model = vocoder.load(tiny_model_file, device="cpu")
    short = extract_features(tone(0.05), tiny_config(), speaker="bob")
    long = extract_features(tone(0.1), tiny_config(), speaker="alice")
    waves = model.synthesize_batch([short, long])
    assert [len(w) for w in waves] == [800, 1600]


def test_bad_requests_are_named(tiny_model_file: Path, features_file: Path) -> None:
    model = vocoder.load(tiny_model_file, device="cpu")
    with pytest.raises(VocoderError, match="method"):
        model.synthesize(features_file, method="slow")  # type: ignore[arg-type]
    with pytest.raises(VocoderError, match="top_p"):
        model.synthesize(features_file, top_p=0)
    with pytest.raises(FeatureFileError, match="speaker"):
        model.synthesize(features_file, speaker="zed")
    linguistic = replace(model.features(features_file), mel=None, linguistic=np.zeros((10, 7), np.float32))
    with pytest.raises(FeatureFileError, match="expected mel, what tiny reads .*`vocoder extract --model tiny`"):
        model.synthesize(linguistic)


def test_stream_yields_the_same_waveform_in_chunks(tiny_model_file: Path, tmp_path: Path) -> None:
    model = vocoder.load(tiny_model_file, device="cpu")
    features = extract_features(tone(0.5), tiny_config(), speaker="bob")
    chunks = list(model.synthesize_stream(features, Sampling(seed=4)))
    assert len(chunks) > 1 and all(chunk.dtype == np.float32 for chunk in chunks)
    assert np.array_equal(np.concatenate(chunks), model.synthesize(features, seed=4))


def test_kernel_precision_is_chosen_at_load(tiny_model_file: Path, features_file: Path) -> None:
    exact = vocoder.load(tiny_model_file, device="cpu")
    half = vocoder.load(tiny_model_file, device="cpu", precision="fp16")
    assert exact._fast.precision == "fp32" and half._fast.precision == "fp16"
    reference = exact.synthesize(features_file, method="naive", seed=2)
    assert np.array_equal(exact.synthesize(features_file, seed=2), reference)  # fp32: the reference's samples
    synthesized = half.synthesize(features_file, seed=2)
    assert synthesized.shape == reference.shape
    # fp16 synthesis is the fp16 kernel's generation, whose logits are within the stated bound of the float32
    # forward's on the same history, and not the float32 kernel's (the half weights are really used).
    from tests.test_cpu_kernel import FP16_RELATIVE_TOLERANCE
    from vocoder.generate.cpu_kernel import KernelWaveNet
    from vocoder.models.wavenet import shift_right

    loaded = [half.features(features_file)]
    result = half.generate(loaded, "fast", Sampling(seed=2), record_logits=True)
    assert np.array_equal(result.waveform[0].numpy(), synthesized)
    local, speaker_ids = half.local_conditioning(loaded).whole(), half.speaker_ids(loaded)
    with torch.no_grad():
        forward = half.model(shift_right(result.ids, half.model.start_id), local, speaker_ids).transpose(1, 2)
        exact = KernelWaveNet(half.model).generate(
            local, speaker_ids, Sampling(seed=2), Sampling(seed=2).uniforms(1, local.shape[-1]), record_logits=True
        )
    assert (forward - result.logits).abs().max() < FP16_RELATIVE_TOLERANCE * forward.abs().max()
    assert not torch.equal(exact.logits, result.logits)
    with pytest.raises(VocoderError, match="precision: expected one of"):
        vocoder.load(tiny_model_file, device="cpu", precision="fp8")  # type: ignore[arg-type]
