import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_config
from vocoder.features.featurefile import FeatureFileError, Features, read_features, save_features, validate_features

CONFIG = tiny_config()


def good(frames: int = 20, **changes: object) -> Features:
    rng = np.random.default_rng(0)
    base = Features(
        sample_rate=16000, hop_length=40, mel=rng.standard_normal((frames, 10)).astype(np.float32), speaker="alice"
    )
    return replace(base, **changes)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    features = good(
        lf0=rng.standard_normal(20).astype(np.float32),
        vuv=np.ones(20, np.float32),
        linguistic=rng.random((20, 7)).astype(np.float32),
    )
    path = save_features(tmp_path / "u.npz", features)
    loaded = read_features(path)
    assert loaded.arrays().keys() == features.arrays().keys()
    assert all(np.array_equal(loaded.arrays()[name], array) for name, array in features.arrays().items())
    assert loaded.speaker == "alice" and loaded.sample_rate == 16000 and loaded.hop_length == 40
    assert loaded.source == str(path)
    assert read_features(path.read_bytes()).n_frames == 20
    assert not list(tmp_path.glob(".*partial"))


def test_conditioning_concatenates_configured_arrays_in_order() -> None:
    config = tiny_config(features={"conditioning": ["lf0", "mel", "vuv"]})
    features = good(lf0=np.full(20, 5.0, np.float32), vuv=np.zeros(20, np.float32))
    matrix = features.conditioning(config)
    assert matrix.shape == (20, 12)
    assert np.all(matrix[:, 0] == 5.0) and np.all(matrix[:, -1] == 0.0)
    assert np.array_equal(matrix[:, 1:11], features.mel)


@pytest.mark.parametrize(
    ("features", "field", "pattern"),
    [
        (good(sample_rate=22050), "sample_rate", "expected 16000, found 22050"),
        (good(hop_length=80), "hop_length", "expected 40, found 80"),
        (good(mel=None, lf0=np.zeros(20, np.float32)), "mel", "missing"),
        (good(mel=np.zeros((20, 9), np.float32)), "mel", r"shape \[frames, 10\], found shape \[20, 9\]"),
        (good(mel=np.full((20, 10), np.nan, np.float32)), "mel", "NaN or infinite"),
        (good(frames=5000), "frames", "at most 4000 frames"),
        (good(speaker="carol"), "speaker", "one of \\['alice', 'bob'\\], found 'carol'"),
        (good(speaker=None), "speaker", "no speaker"),
        (good(lf0=np.zeros(19, np.float32)), "frames", "one frame count"),
        (
            good(mel=None, lf0=np.zeros(20, np.float32), vuv=np.zeros(20, np.float32), linguistic=np.zeros((20, 7))),
            "conditioning",
            "expected mel, what MODEL reads .*`vocoder extract --model MODEL`.*found lf0 \\+ vuv \\+ linguistic, "
            "which `vocoder frontend` makes for other models",
        ),
    ],
    ids=["rate", "hop", "missing", "dim", "nan", "too-long", "unknown-speaker", "no-speaker", "ragged", "other-kind"],
)
def test_validation_names_file_field_expected_and_found(features: Features, field: str, pattern: str) -> None:
    config = tiny_config(features={"max_frames": 4000})
    with pytest.raises(FeatureFileError, match=pattern) as caught:
        validate_features(replace(features, source="utt.npz"), config)
    assert caught.value.field == field
    assert str(caught.value).startswith("utt.npz: field")


def test_speaker_can_be_left_for_synthesis_time() -> None:
    validate_features(good(speaker=None), CONFIG, require_speaker=False)


def archive(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def header(version: int = 1) -> dict[str, np.ndarray]:
    return {"version": np.array(version), "sample_rate": np.array(16000), "hop_length": np.array(40)}


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"garbage", "'file': expected an .npz feature file \\(a zip archive\\), found other data$"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "found WAV audio: .*`vocoder extract`"),
        (b"\x93NUMPY\x01\x00", "found a single .npy array"),
        (archive(**header(2), mel=np.zeros((3, 10))), "'version': expected 1, found 2"),
        (archive(mel=np.zeros((3, 10))), "'version': expected an integer scalar, found nothing"),
        (archive(**header(), mel=np.zeros((3, 10)), extra=np.zeros(3)), "'extra'.*unknown array"),
        (archive(**header(), mel=np.array(["a", "b"])), "'mel': expected a numeric array"),
        (archive(**header(), mel=np.zeros(3), speaker=np.array([1, 2])), "'speaker': expected a string scalar"),
    ],
    ids=["garbage", "wav", "npy", "version", "no-version", "unknown-array", "text-array", "bad-speaker"],
)
def test_reading_rejects_malformed_files(data: bytes, pattern: str) -> None:
    with pytest.raises(FeatureFileError, match=pattern):
        read_features(data, source="upload.npz")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **header(), mel=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(FeatureFileError, match="'mel': expected numeric arrays"):
        read_features(buffer.getvalue())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FeatureFileError, match="no such file"):
        read_features(tmp_path / "absent.npz")
