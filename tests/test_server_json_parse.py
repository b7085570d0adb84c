"""Large JSON bodies are parsed in a process of their own (pydantic's parser holds the GIL for the whole parse,
which stalled the event loop and the inference threads: docs/BENCHMARKS.md, "Mixed load"), with the same result
and the same errors as a parse in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import vocoder_server.uploads as uploads
from tests.test_server import SYNTHESIZE, error_of, running
from tests.test_server_support import build_models_dir

LARGE = getattr(uploads, "JSON_IN_PROCESS_BYTES", 256 * 1024) + 1


def large_body(sample_rate: int = 16000, ragged: bool = False) -> bytes:
    """A JSON feature body of more than `LARGE` bytes for the test models (10 mels, hop 40)."""
    rows = ["[" + ",".join(["-1.25"] * 10) + "]"] * (LARGE // 60 + 1)
    if ragged:
        rows[-1] = "[1.0]"
    return (f'{{"sample_rate":{sample_rate},"hop_length":40,"mel":[' + ",".join(rows) + "]}").encode()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with running(build_models_dir(tmp_path_factory.mktemp("models"))) as started:
        yield started


def test_a_large_json_body_is_not_parsed_in_the_service_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed_here: list[int] = []
    original = uploads.features_from_json

    def spy(body: bytes) -> object:
        parsed_here.append(len(body))
        return original(body)

    monkeypatch.setattr(uploads, "features_from_json", spy)
    body = large_body(sample_rate=8000)  # parsed whole, then refused by the model's check
    assert len(body) > LARGE
    response = client.post(SYNTHESIZE, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and error_of(response)["field"] == "sample_rate", response.text
    assert parsed_here == []
    small = b'{"sample_rate":8000,"hop_length":40,"mel":[[0,0,0,0,0,0,0,0,0,0]]}'
    response = client.post(SYNTHESIZE, content=small, headers={"content-type": "application/json"})
    assert response.status_code == 422 and parsed_here == [len(small)]  # a small body: a thread, as before


def test_the_parser_process_gives_the_same_features_and_errors() -> None:
    body = large_body()
    features = asyncio.run(uploads.JSON_PARSER.parse(body))
    expected = uploads.features_from_json(body)
    assert features.mel is not None and expected.mel is not None
    assert np.array_equal(features.mel, expected.mel) and features.source == expected.source == "request"
    with pytest.raises(uploads.ApiError) as raised:
        asyncio.run(uploads.JSON_PARSER.parse(large_body(ragged=True)))
    assert (raised.value.status, raised.value.code, raised.value.field) == (422, "invalid_features", "mel")


def test_a_killed_parser_process_is_replaced(tmp_path: Path) -> None:
    import os
    import signal

    parser = uploads.JsonParser()
    try:
        asyncio.run(parser.parse(large_body()))
        pool = parser._executor()
        for pid in list(pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(uploads.BrokenProcessPool):
            asyncio.run(parser.parse(large_body()))
        assert asyncio.run(parser.parse(large_body())).n_frames > 0
    finally:
        parser.stop()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps")
def test_the_parser_process_loads_no_torch() -> None:
    """It imports `json_body` only (0.4 s of CPU), not the service's modules with torch (seconds, and its memory)."""
    parser = uploads.JsonParser()
    try:
        asyncio.run(parser.parse(large_body()))
        pids = list(parser._executor()._processes)  # type: ignore[union-attr]
        assert pids and not any("libtorch" in Path(f"/proc/{pid}/maps").read_text() for pid in pids)
    finally:
        parser.stop()
