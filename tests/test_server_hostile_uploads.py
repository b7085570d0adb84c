"""Hostile bodies (issue #15): every damaged `.npz` member is a 422 naming it, whatever the other members are;
a JSON body cannot hold more numbers than the model's frame cap allows; metric labels take only known values;
an upload the client abandons is a client error, not a 500."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server import Settings, create_app
from tests.test_server_support import build_models_dir, npz_bytes, upload, wait_ready

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


def npy_claiming(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(16)


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
        (stored_zip({**VALID, "mel.npy": npy_claiming((10**9, 10))}), "mel"),
        (stored_zip({"junk": b"not an array", **VALID, "mel.npy": npy_claiming((10**9, 10))}), "junk"),
        (stored_zip({**VALID, "mel.npy": npy_claiming((10**9, 10)), "junk": b"x"}), "mel"),
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
