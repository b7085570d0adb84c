"""OpenAI's speech API against this service: the official `openai` client with only its base URL changed, and the
voice list."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile
import torch
from openai import AuthenticationError, OpenAI, UnprocessableEntityError

from tests.conftest import tiny_config
from tests.test_server_support import HOP, build_models_dir, serving, wait_ready
from vocoder.features.linguistic import linguistic_dim
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings, create_app

pytestmark = [
    pytest.mark.skipif(shutil.which("festival") is None, reason="needs Festival (make install)"),
    pytest.mark.xdist_group("server_openai"),  # on one xdist worker: the `url` service is started once
]

KEY = "s3cret"
TEXT = "Yes, thank you."


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service on loopback with `teacher`, `solo` (mel) and `ling` (linguistic, speakers slt/kal/ked), behind a
    key that the OpenAI client sends as a Bearer token."""
    root = build_models_dir(tmp_path_factory.mktemp("models"))
    torch.manual_seed(0)
    features = {"conditioning": ["linguistic", "lf0", "vuv"], "linguistic_dim": linguistic_dim()}
    config = tiny_config(name="ling", features=features, speakers=["slt", "kal", "ked"])
    save_model(root / "ling" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    with serving(create_app(Settings(models_dir=root, device="cpu", api_key=KEY))) as base:
        wait_ready(lambda path: httpx.get(base + path))
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def test_the_openai_client_gets_speech_in_each_format(client: OpenAI) -> None:
    response = client.audio.speech.with_raw_response.create(model="tts-1", voice="slt", input=TEXT)
    assert response.headers["content-type"] == "audio/wav" and response.headers["x-model"] == "ling"
    wav, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
    samples = int(response.headers["x-audio-samples"])
    assert rate == 16000 and len(wav) == samples and samples % HOP == 0 and samples > 0.5 * rate
    flac = client.audio.speech.create(model="ling", voice="kal", input=TEXT, response_format="flac")
    assert soundfile.info(io.BytesIO(flac.content)).format == "FLAC"
    pcm = client.audio.speech.with_raw_response.create(model="ling", voice="ked", input=TEXT, response_format="pcm")
    assert pcm.headers["content-type"] == "audio/pcm" and pcm.headers["x-sample-rate"] == "16000"
    assert len(pcm.content) == 2 * int(pcm.headers["x-audio-samples"])
    assert np.abs(np.frombuffer(pcm.content, "<i2")).max() > 0


@pytest.mark.parametrize("voice", ["slt", "kal"])  # an HTS voice (engine speech rate) and a diphone voice (stretch)
def test_speed_goes_through_festival(client: OpenAI, voice: str) -> None:
    def samples(speed: float) -> int:
        response = client.audio.speech.with_raw_response.create(model="tts-1", voice=voice, input=TEXT, speed=speed)
        return int(response.headers["x-audio-samples"])

    normal, fast, slow = samples(1.0), samples(2.0), samples(0.5)
    assert fast < 0.7 * normal and slow > 1.5 * normal


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"response_format": "mp3"}, "response_format: Input should be 'wav', 'flac' or 'pcm'"),
        ({"voice": "alloy"}, "voice: Input should be 'slt', 'kal' or 'ked'"),
        ({"model": "whisper"}, "model: 'whisper' is not served"),
        ({"model": "teacher"}, "not linguistic features"),
        ({"speed": 5.0}, "speed: Input should be less than or equal to 4"),
        ({"input": ""}, "input: String should have at least 1 character"),
    ],
)
def test_what_the_service_cannot_do_is_a_422_the_client_raises(
    client: OpenAI, overrides: dict[str, object], words: str
) -> None:
    arguments: dict[str, object] = {"model": "tts-1", "voice": "slt", "input": TEXT, **overrides}
    with pytest.raises(UnprocessableEntityError) as raised:
        client.audio.speech.create(**arguments)  # type: ignore[arg-type]
    assert words in str(raised.value)


def test_a_wrong_key_is_refused(url: str) -> None:
    stranger = OpenAI(base_url=f"{url}/v1", api_key="guess", max_retries=0)
    with pytest.raises(AuthenticationError):
        stranger.audio.speech.create(model="tts-1", voice="slt", input=TEXT)


def test_voices_list_each_voice_with_its_model_and_language(url: str) -> None:
    response = httpx.get(f"{url}/v1/voices", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    voices = response.json()["voices"]
    assert [(v["name"], v["model"], v["language"]) for v in voices] == [
        ("slt", "ling", "en-US"),
        ("kal", "ling", "en-US"),
        ("ked", "ling", "en-US"),
    ]
    assert voices[0]["festival_voice"] == "cmu_us_slt_arctic_hts"


def test_tts_takes_the_same_speed(url: str) -> None:
    def samples(speed: float) -> int:
        body = {"text": TEXT, "voice": "kal", "speed": speed}
        response = httpx.post(f"{url}/v1/tts", json=body, headers={"X-API-Key": KEY}, timeout=60)
        assert response.status_code == 200, response.text
        return int(response.headers["x-audio-samples"])

    assert samples(2.0) < 0.7 * samples(1.0)
