import numpy as np
import pytest

from tests.conftest import tiny_config, tone
from vocoder.features.acoustic import continuous_log_f0, extract_features, f0_features, frame_count, log_mel


def test_frame_grid() -> None:
    assert frame_count(400, 40) == 10
    assert frame_count(401, 40) == 11


def test_log_mel_shape_and_floor() -> None:
    cfg = tiny_config().features
    mel = log_mel(tone(0.5), 16000, cfg)
    assert mel.shape == (200, 10) and mel.dtype == np.float32
    silent = log_mel(np.zeros(4000, np.float32), 16000, cfg)
    assert np.allclose(silent, np.log(cfg.log_floor))


def test_f0_of_a_tone_is_its_frequency() -> None:
    cfg = tiny_config(features={"conditioning": ["mel", "lf0", "vuv"]}).features
    lf0, vuv = f0_features(tone(1.0, freq=220.0), 16000, cfg)
    assert lf0.shape == vuv.shape == (400,)
    voiced = vuv > 0
    assert voiced.mean() > 0.8
    assert np.median(np.exp(lf0[voiced])) == pytest.approx(220.0, rel=0.02)


def test_unvoiced_gaps_are_interpolated_in_log_f0() -> None:
    f0 = np.array([0, 100, 0, 0, 400, 0], dtype=np.float64)
    lf0 = continuous_log_f0(f0)
    assert lf0[0] == pytest.approx(np.log(100)) and lf0[-1] == pytest.approx(np.log(400))
    assert lf0[2] == pytest.approx(np.log(100) + (np.log(400) - np.log(100)) / 3, rel=1e-6)
    assert np.all(continuous_log_f0(np.zeros(4)) == 0)


def test_extract_features_validates_against_its_config() -> None:
    config = tiny_config(features={"conditioning": ["mel", "lf0", "vuv"]})
    features = extract_features(tone(0.3), config, speaker="bob")
    assert features.conditioning(config).shape == (120, 12)


def test_a_teacher_sampling_by_voicing_gets_the_voicing_it_samples_by() -> None:
    """Its mel alone conditions it; `lf0` and `vuv` come along for its voiced temperature, where plain sampling
    leaves them out."""
    tied = tiny_config(sampling={"voiced_temperature": 0.5})
    features = extract_features(tone(0.3, freq=200.0), tied, speaker="bob")
    assert features.vuv is not None and features.vuv.mean() > 0.8 and features.lf0 is not None
    assert features.conditioning(tied).shape == (120, 10)
    assert extract_features(tone(0.3), tiny_config()).vuv is None


def test_linguistic_cannot_come_from_audio() -> None:
    config = tiny_config(features={"conditioning": ["linguistic"], "linguistic_dim": 5})
    with pytest.raises(ValueError, match="labels, not audio"):
        extract_features(tone(0.1), config)
