"""Copy synthesis over HTTP (`POST /v1/vocode`): a recording in, the model's resynthesis out."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

import vocoder
from tests.conftest import tiny_config, tone
from tests.test_server_support import HOP, build_models_dir, npz_bytes, upload, voiced_f0, wait_ready
from tests.test_student_kernel import random_student
from vocoder.features.acoustic import extract_features, frame_count
from vocoder.features.linguistic import linguistic_dim
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings, create_app

VOCODE = "/v1/vocode"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`teacher` (mel, speakers), `solo` (mel + lf0 + vuv), `ling` (linguistic: not for audio) and `sine` (a
    student with a harmonic source: mel, and F0 for the source)."""
    root = build_models_dir(tmp_path_factory.mktemp("models"))
    student = random_student(source_harmonics=3)
    save_model(root / "sine" / "model.safetensors", student, student.config, "student", {"steps": 0})
    features = {"conditioning": ["linguistic", "vuv"], "linguistic_dim": linguistic_dim()}
    config = tiny_config(name="ling", features=features)
    save_model(root / "ling" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    return root


@pytest.fixture(scope="module")
def client(models_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(models_dir=models_dir, device="cpu", max_frames=400, max_upload_bytes=256 * 1024))
    with TestClient(app) as started:
        wait_ready(started.get)
        yield started


def encoded(wav: np.ndarray, rate: int, container: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, wav, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def audio(data: bytes, name: str = "take.wav") -> dict[str, tuple[str, bytes, str]]:
    return {"audio": (name, data, "application/octet-stream")}


def error_of(response: object) -> dict[str, object]:
    body: dict[str, object] = response.json()["error"]  # type: ignore[attr-defined]
    return body


def test_stereo_44k_wav_is_mixed_down_resampled_and_resynthesised(client: TestClient) -> None:
    seconds = 0.3
    left = tone(seconds, 200.0, 44100)
    stereo = np.stack([left, 0.5 * left], axis=1)
    response = client.post(VOCODE, params={"speaker": "bob", "seed": 1}, files=audio(encoded(stereo, 44100)))
    assert response.status_code == 200, response.text
    assert response.headers["x-input-conversion"] == "resampled 44100 Hz to 16000 Hz; mixed 2 channels down to mono"
    wav, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == 16000 and len(wav) == frame_count(round(seconds * 16000), HOP) * HOP
    assert response.headers["x-model"] == "teacher"


@pytest.mark.parametrize(("container", "subtype", "name"), [("FLAC", "PCM_16", "a.flac"), ("OGG", "VORBIS", "a.ogg")])
def test_flac_and_ogg_at_the_model_rate_need_no_conversion(
    client: TestClient, container: str, subtype: str, name: str
) -> None:
    data = encoded(tone(0.2), 16000, container, subtype)
    response = client.post(VOCODE, params={"model": "solo"}, files=audio(data, name))
    assert response.status_code == 200, response.text
    assert response.headers["x-input-conversion"] == "none" and response.headers["x-model"] == "solo"


def test_copy_synthesis_is_the_features_of_the_recording(client: TestClient, models_dir: Path) -> None:
    """The route's features are `extract_features` of the decoded file: same seed, same samples as the API."""
    wav = tone(0.2)
    params = {"seed": 3, "speaker": "alice", "format": "float"}
    response = client.post(VOCODE, params=params, files=audio(encoded(wav, 16000, subtype="FLOAT")))
    assert response.status_code == 200, response.text
    teacher = vocoder.load(models_dir / "teacher", device="cpu")
    expected = teacher.synthesize(extract_features(wav, teacher.config, speaker="alice"), seed=3)
    assert np.array_equal(soundfile.read(io.BytesIO(response.content), dtype="float32")[0], np.clip(expected, -1, 1))


def test_copy_synthesis_gives_a_source_student_the_recording_f0(client: TestClient, models_dir: Path) -> None:
    """The route extracts what the model reads (`Config.feature_arrays`): for a source student, F0 beside the mel."""
    wav = tone(0.2, freq=220.0)
    params = {"model": "sine", "seed": 3, "speaker": "bob", "format": "float"}
    response = client.post(VOCODE, params=params, files=audio(encoded(wav, 16000, subtype="FLOAT")))
    assert response.status_code == 200, response.text
    listed = {info["name"]: info for info in client.get("/v1/models").json()["models"]}
    assert [array["name"] for array in listed["sine"]["feature_arrays"]] == ["mel", "lf0", "vuv"]
    assert [array["name"] for array in listed["sine"]["conditioning"]] == ["mel"]
    student = vocoder.load(models_dir / "sine", device="cpu")
    features = extract_features(wav, student.config, speaker="bob")
    assert features.vuv.any()
    expected = student.synthesize(features, seed=3)
    assert np.array_equal(soundfile.read(io.BytesIO(response.content), dtype="float32")[0], np.clip(expected, -1, 1))


def test_a_mel_only_file_for_a_source_student_is_a_422_naming_the_f0_arrays_and_how_to_make_them(
    client: TestClient,
) -> None:
    """A feature file made for a teacher (mel only) sent to a student with a harmonic source: refused before any
    work, naming both missing arrays and the command that writes them; the same file with F0 is synthesized."""
    params = {"model": "sine", "speaker": "bob"}
    mel_only = client.post("/v1/synthesize", params=params, files=upload(npz_bytes(6, speaker=None)))
    assert mel_only.status_code == 422
    error = error_of(mel_only)
    assert error["field"] == "lf0" and error["code"] == "invalid_features"
    message = str(error["message"])
    assert "expected lf0 and vuv" in message and "found no lf0 and no vuv" in message
    assert "`vocoder extract --model sine` writes them" in message
    without_vuv = npz_bytes(6, speaker=None, lf0=voiced_f0(6)["lf0"])
    assert error_of(client.post("/v1/synthesize", params=params, files=upload(without_vuv)))["field"] == "vuv"
    with_f0 = client.post("/v1/synthesize", params=params, files=upload(npz_bytes(6, speaker=None, **voiced_f0(6))))
    assert with_f0.status_code == 200, with_f0.text


UNUSABLE = [
    (b"RIFF\x00\x00\x00\x00WAVEnot really", "broken.wav", "cannot read audio"),
    (np.random.default_rng(0).bytes(4000), "noise.ogg", "cannot read audio"),
    (npz_bytes(), "features.npz", "cannot read audio"),
    (b"", "empty.wav", "cannot read audio"),
    (encoded(np.zeros((0, 1), np.float32), 16000), "silent.wav", "no samples"),
    (encoded(np.zeros((160, 9), np.float32), 16000), "nine.wav", "9 channels"),
    (encoded(np.zeros(160, np.float32), 2000), "slow.wav", "sample rate 2000 Hz"),
    (encoded(np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT"), "nan.wav", "NaN"),
]
"""Named by file: an id made of the bytes would differ between xdist's workers (a float WAV's PEAK chunk holds the
time it was written), and xdist stops when its workers collect different tests."""


@pytest.mark.parametrize(("data", "name", "words"), UNUSABLE, ids=[name for _, name, _ in UNUSABLE])
def test_what_is_not_usable_audio_is_a_422_naming_the_problem(
    client: TestClient, data: bytes, name: str, words: str
) -> None:
    response = client.post(VOCODE, files=audio(data, name))
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_audio" and error["field"] == "audio"
    assert words in str(error["message"]) and name in str(error["message"])


def test_limits_and_wrong_requests(client: TestClient) -> None:
    too_long = client.post(VOCODE, files=audio(encoded(np.zeros(401 * HOP, np.float32), 16000)))
    assert too_long.status_code == 422 and "longer than 1 s" in str(error_of(too_long)["message"])
    too_big = client.post(VOCODE, files=audio(encoded(np.zeros(200_000, np.float32), 16000, subtype="FLOAT")))
    assert too_big.status_code == 413
    linguistic = client.post(VOCODE, params={"model": "ling"}, files=audio(encoded(tone(0.1), 16000)))
    assert linguistic.status_code == 422 and error_of(linguistic)["code"] == "not_acoustic"
    as_json = client.post(VOCODE, json={"audio": "x"})
    assert as_json.status_code == 415
    wrong_field = client.post(VOCODE, files={"features": ("a.wav", encoded(tone(0.1), 16000), "audio/wav")})
    assert wrong_field.status_code == 422 and error_of(wrong_field)["code"] == "missing_audio"
    no_speaker = client.post(VOCODE, files=audio(encoded(tone(0.1), 16000)))
    assert no_speaker.status_code == 422 and error_of(no_speaker)["field"] == "speaker"
