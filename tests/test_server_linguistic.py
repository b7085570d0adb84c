"""Linguistic input to the service: text through Festival (`POST /v1/tts`) and uploaded HTS `.lab` files."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile
import torch
from fastapi.testclient import TestClient

from tests.conftest import tiny_config
from tests.test_server_support import HOP, build_models_dir, npz_bytes, upload, wait_ready
from vocoder.features.linguistic import format_labels, linguistic_dim
from vocoder.frontend.festival import run_festival
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings, create_app

pytestmark = [
    pytest.mark.skipif(shutil.which("festival") is None, reason="needs Festival (make install)"),
    pytest.mark.xdist_group("server_linguistic"),  # on one xdist worker: `client` and `labels` are made once
]

TEXT = "Yes."  # short: about 0.6 s of audio


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """`teacher` and `solo` (mel), `ling` (linguistic + lf0 + vuv) and `ling_nof0` (linguistic + vuv)."""
    root = build_models_dir(tmp_path_factory.mktemp("models"))
    torch.manual_seed(0)
    for name, conditioning in (("ling", ["linguistic", "lf0", "vuv"]), ("ling_nof0", ["linguistic", "vuv"])):
        features = {"conditioning": conditioning, "linguistic_dim": linguistic_dim()}
        config = tiny_config(name=name, features=features, speakers=["slt", "kal", "ked"])
        save_model(root / name / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    with TestClient(create_app(Settings(models_dir=root, device="cpu"))) as started:
        wait_ready(started.get)
        yield started


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    [utterance] = run_festival([TEXT], "slt", tmp_path_factory.mktemp("festival"))
    return format_labels(utterance.segments).encode()


def frames_of(response: object) -> int:
    samples = int(response.headers["x-audio-samples"])  # type: ignore[attr-defined]
    assert samples % HOP == 0
    return samples // HOP


def test_tts_streams_speech_of_the_text(client: TestClient) -> None:
    params = {"model": "ling", "seed": 1, "stream": "true"}
    with client.stream("POST", "/v1/tts", params=params, json={"text": TEXT, "voice": "kal"}) as response:
        assert response.status_code == 200, response.read()
        audio = b"".join(response.iter_bytes())
    wav, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    assert rate == 16000 and len(wav) == frames_of(response) * HOP and len(wav) > 0.3 * rate
    # Not only as long: the same samples as the whole answer (same text, voice and seed), header and all.
    whole = client.post("/v1/tts", params={**params, "stream": "false"}, json={"text": TEXT, "voice": "kal"})
    assert whole.status_code == 200
    assert audio[:44] == whole.content[:44] and audio[44:] == whole.content[44:]


def test_label_upload_matches_the_text_it_came_from(client: TestClient, labels: bytes) -> None:
    params = {"model": "ling_nof0", "speaker": "slt", "strategy": "argmax"}
    from_labels = client.post("/v1/synthesize", params=params, files=upload(labels, "hello.lab"))
    assert from_labels.status_code == 200, from_labels.text
    from_text = client.post("/v1/tts", params=params, json={"text": TEXT, "voice": "slt"})
    assert from_text.status_code == 200
    assert frames_of(from_labels) == frames_of(from_text)
    assert from_labels.content == from_text.content  # pcm16 WAV: no time stamp; same labels, same audio


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        ("ling", None, "lf0"),
        ("teacher", None, "model"),
        ("ling_nof0", b"0 100 not-a-label\n", "features"),
        ("ling_nof0", b"\xff\xfe", "features"),
    ],
)
def test_bad_label_uploads_are_422(
    client: TestClient, labels: bytes, model: str, data: bytes | None, field: str
) -> None:
    params = {"model": model, "speaker": "slt"}
    response = client.post("/v1/synthesize", params=params, files=upload(data or labels, "utterance.lab"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_labels_lasting_too_long_are_refused_before_any_work(client: TestClient, labels: bytes) -> None:
    *head, last = labels.decode().splitlines()
    start, _, context = last.split()
    forever = "\n".join([*head, f"{start} {10**15} {context}"]).encode()  # about three years
    params = {"model": "ling_nof0", "speaker": "slt"}
    response = client.post("/v1/synthesize", params=params, files=upload(forever, "x.lab"))
    assert response.status_code == 422 and response.json()["error"]["field"] == "frames"


@pytest.mark.parametrize(
    ("params", "body", "field"),
    [
        ({"model": "teacher"}, {"text": TEXT}, "model"),
        ({"model": "ling"}, {"text": TEXT, "voice": "bob"}, "voice"),
        ({"model": "ling"}, {"text": ""}, "text"),
        ({"model": "ling"}, {"text": "x" * 1001}, "text"),
        ({"model": "ling"}, {"text": "\u2603 \u2603"}, "text"),  # nothing Festival can read
        ({"model": "ling", "speaker": "alice"}, {"text": TEXT}, "speaker"),
        ({"model": "ling", "temperature": -1}, {"text": TEXT}, "temperature"),
    ],
)
def test_bad_tts_requests_are_422(client: TestClient, params: dict, body: dict, field: str) -> None:
    response = client.post("/v1/tts", params=params, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_tts_refuses_other_media_types(client: TestClient) -> None:
    response = client.post("/v1/tts", params={"model": "ling"}, files=upload(npz_bytes()))
    assert response.status_code == 415


def test_tts_without_festival_is_501(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    response = client.post("/v1/tts", params={"model": "ling"}, json={"text": TEXT})
    assert response.status_code == 501 and "festival" in response.json()["error"]["message"]
