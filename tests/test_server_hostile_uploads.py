"""Hostile bodies (issue #15): every damaged `.npz` member is a 422 naming it, whatever the other members are;
a JSON body cannot hold more numbers than the model's frame cap allows; metric labels take only known values;
an upload the client abandons is a client error, not a 500."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zipfile
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect

from tests.test_server import _npy_claiming
from tests.test_server_support import build_models_dir, npz_bytes, upload, wait_ready
from vocoder_server import Settings, create_app
from vocoder_server.errors import CLIENT_CLOSED, ApiError
from vocoder_server.uploads import read_body

SYNTHESIZE = "/v1/synthesize"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    models = build_models_dir(tmp_path_factory.mktemp("models"))
    with TestClient(create_app(Settings(models_dir=models, device="cpu", max_frames=200))) as started:
        wait_ready(started.get)
        yield started


def stored_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


MEL = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
VALID = {
    "version.npy": npy(np.array(1, np.int32)),
    "sample_rate.npy": npy(np.array(16000, np.int32)),
    "hop_length.npy": npy(np.array(40, np.int32)),
    "mel.npy": npy(MEL),
}


def bad_crc() -> bytes:
    data = bytearray(stored_zip(VALID))
    at = bytes(data).find(MEL.tobytes()[:16])
    data[at + 40] ^= 0xFF
    return bytes(data)


def false_size() -> bytes:
    """The central directory claims the mel member is 64 bytes longer than it is."""
    data = bytearray(stored_zip(VALID))
    directory = bytes(data).find(b"PK\x01\x02" + bytes(0), bytes(data).rfind(b"mel.npy") - 46)
    sizes = directory + 20
    compressed, size = struct.unpack("<II", data[sizes : sizes + 8])
    data[sizes : sizes + 8] = struct.pack("<II", compressed + 64, size + 64)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (bad_crc(), "mel"),
        (false_size(), "mel"),
        (stored_zip({**VALID, "speaker": b"alice"}), "speaker"),
        (stored_zip({**VALID, "vuv.npy": b"\x00\x01" * 8}), "vuv"),
        (stored_zip({**VALID, "mel.npy": _npy_claiming((10**9, 10))}), "mel"),
        (stored_zip({"junk": b"not an array", **VALID, "mel.npy": _npy_claiming((10**9, 10))}), "junk"),
        (stored_zip({**VALID, "mel.npy": _npy_claiming((10**9, 10)), "junk": b"x"}), "mel"),
    ],
    ids=["bad-crc", "false-size", "speaker-raw", "vuv-raw", "huge-shape", "junk-then-huge", "huge-then-junk"],
)
def test_damaged_npz_members_are_422_naming_the_member(client: TestClient, data: bytes, field: str) -> None:
    response = client.post(SYNTHESIZE, params={"model": "teacher", "speaker": "alice"}, files=upload(data))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_valid_stored_npz_still_works(client: TestClient) -> None:
    response = client.post(SYNTHESIZE, params={"model": "teacher", "speaker": "alice"}, files=upload(stored_zip(VALID)))
    assert response.status_code == 200, response.text
    assert client.post(SYNTHESIZE, files=upload(npz_bytes(8))).status_code == 200


def test_a_json_body_of_more_rows_than_the_frame_cap_is_refused_before_parsing(client: TestClient) -> None:
    rows = b"[" + b",".join([b"[0]"] * 100_000) + b"]"
    body = b'{"sample_rate": 16000, "hop_length": 40, "mel": ' + rows + b"}"
    response = client.post(SYNTHESIZE, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"
    numbers = b"[[" + b",".join([b"0"] * 100_000) + b"]]"
    body = b'{"sample_rate": 16000, "hop_length": 40, "mel": ' + numbers + b"}"
    response = client.post(SYNTHESIZE, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"


def test_a_json_body_at_the_frame_cap_is_still_parsed(client: TestClient) -> None:
    mel = np.zeros((200, 10)).tolist()
    body = {"sample_rate": 16000, "hop_length": 40, "mel": mel, "lf0": [0.0] * 200, "speaker": "alice"}
    response = client.post(SYNTHESIZE, params={"model": "teacher"}, json=body)
    assert response.status_code == 200, response.text


def test_invented_http_methods_share_one_metric_label(client: TestClient) -> None:
    for number in range(5):
        client.request(f"BREW{number}", "/healthz")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'method="other"' in text


class _PartialUpload:
    """A request whose client sends the first chunk of its body, then hangs up (`stall=False`) or goes silent."""

    def __init__(self, stall: bool) -> None:
        self.headers: dict[str, str] = {}
        self.stall = stall

    async def stream(self) -> AsyncIterator[bytes]:
        yield b"part of a body"
        if self.stall:
            await asyncio.sleep(3600)
        raise ClientDisconnect


def test_an_abandoned_upload_is_a_client_error() -> None:
    with pytest.raises(ApiError) as error:
        asyncio.run(read_body(_PartialUpload(stall=False), 1024, 5.0))  # type: ignore[arg-type]
    assert error.value.status == CLIENT_CLOSED


def test_a_stalled_body_is_a_408_after_the_body_timeout() -> None:
    began = time.monotonic()
    with pytest.raises(ApiError) as error:
        asyncio.run(read_body(_PartialUpload(stall=True), 1024, 0.2))  # type: ignore[arg-type]
    assert error.value.status == 408 and time.monotonic() - began < 5


def test_a_speaker_for_a_model_without_speakers_is_422(client: TestClient) -> None:
    solo = npz_bytes(8, speaker=None, lf0=np.zeros(8, np.float32), vuv=np.zeros(8, np.float32))
    response = client.post(SYNTHESIZE, params={"model": "solo", "speaker": "nobody"}, files=upload(solo))
    assert response.status_code == 422 and response.json()["error"]["field"] == "speaker"
    assert client.post(SYNTHESIZE, params={"model": "solo"}, files=upload(solo)).status_code == 200
