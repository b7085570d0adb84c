"""`vocoder serve` as a real process on 127.0.0.1: start-up, readiness, synthesis, streaming, clean shutdown."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile

from tests.test_cli import refuse_to_serve, run
from tests.test_server_support import HOP, build_models_dir, free_port, npz_bytes, serving, upload, wait_ready
from vocoder_server import Settings, create_app
from vocoder_server.inference import InferenceEngine

SYNTHESIZE = "/v1/synthesize"


@pytest.mark.slow
def test_vocoder_serve_answers_on_loopback(tmp_path: Path) -> None:
    models = build_models_dir(tmp_path / "models")
    port = free_port()
    command = [sys.executable, "-m", "vocoder.cli", "serve", "--port", str(port), "--models", str(models)]
    env = {**os.environ, "VOCODER_API_KEY": "k", "VOCODER_DEVICE": "cpu", "VOCODER_TORCH_THREADS": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "k"}, timeout=30) as client:

            def get(path: str) -> httpx.Response:
                try:
                    return client.get(path)
                except httpx.TransportError:  # not listening yet
                    assert process.poll() is None, "vocoder serve exited during start-up"
                    return httpx.Response(599)

            wait_ready(get, seconds=90)
            names = [item["name"] for item in client.get("/v1/models").json()["models"]]
            assert names == ["solo", "teacher"]
            response = client.post("/v1/synthesize", params={"model": "teacher"}, files=upload(npz_bytes(8)))
            assert response.status_code == 200
            assert soundfile.info(io.BytesIO(response.content)).frames == 8 * HOP
            frames = 150
            with client.stream(
                "POST", "/v1/synthesize", params={"stream": "true", "model": "teacher"}, files=upload(npz_bytes(frames))
            ) as streamed:
                assert streamed.status_code == 200 and "content-length" not in streamed.headers
                pieces = list(streamed.iter_raw())
            assert len(pieces) > 1, "the audio should arrive in several chunks"
            assert len(b"".join(pieces)) == 44 + frames * HOP * 2
            assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert f"127.0.0.1:{port}" in output
    # Nothing it started (the JSON parser's processes) outlives it; they see the end of its pipes and exit.
    deadline = time.monotonic() + 20
    while _running_in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running_in_group(process.pid), "processes started by vocoder serve are still running"


def _running_in_group(group: int) -> list[int]:
    """Processes of process group `group` that are still running (zombies, which no init may reap here, excluded)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            running.append(int(stat.parent.name))
    return running


def test_vocoder_serve_refuses_bad_settings_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_to_serve(monkeypatch)
    result = run("serve", env={"VOCODER_MAX_QUEUE": "0"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "max_queue" in result.stderr


def audio_seconds(client: httpx.Client, model: str = "teacher") -> float:
    line = f'vocoder_audio_seconds_total{{model="{model}"}}'
    rows = [row for row in client.get("/metrics").text.splitlines() if row.startswith(line)]
    return float(rows[0].split()[-1]) if rows else 0.0  # no sample yet: nothing generated through the engine


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, Any, InferenceEngine]]:
    """The app behind a real uvicorn socket: (client, the `teacher` model, the inference engine)."""
    app = create_app(Settings(models_dir=build_models_dir(tmp_path / "models"), device="cpu"))
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        wait_ready(client.get, seconds=90)
        state = app.state.service
        yield client, state.registry.models["teacher"], state.engine


def test_an_abandoned_stream_stops_its_generation_and_frees_the_worker(
    served: tuple[httpx.Client, Any, InferenceEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream's generator is held after its first chunk until the engine marks the job abandoned (the client's
    hang-up, seen by the server), so the check does not race disconnect detection against generation speed."""
    client, teacher, engine = served
    original = teacher.synthesize_stream

    def running() -> set[Any]:
        return set().union(*(lane._running for lane in engine.lanes.values()))

    made, stopped = [], threading.Event()

    def held(*args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        [job] = running()
        try:
            for chunk in original(*args, **kwargs):
                if made:  # every chunk after the first waits until the job is given up (at most 60 s)
                    for _ in range(6000):
                        if job.abandoned:
                            break
                        time.sleep(0.01)
                made.append(len(chunk))
                yield chunk
        finally:
            stopped.set()

    monkeypatch.setattr(teacher, "synthesize_stream", held)
    frames = 4000  # 160,000 samples: about 156 chunks
    before = audio_seconds(client)
    with client.stream("POST", SYNTHESIZE, params={"stream": "true"}, files=upload(npz_bytes(frames))) as abandoned:
        assert abandoned.status_code == 200
        next(abandoned.iter_raw())
    assert stopped.wait(120), "the abandoned stream's generation was never stopped"
    assert len(made) <= 3, f"the generation ran on after the client left: {len(made)} chunks"
    assert sum(made) < frames * HOP
    for _ in range(6000):  # the worker leaves the job within moments of closing its generator
        if not running():
            break
        time.sleep(0.01)
    assert not running() and engine.depth == 0, "the worker still holds the abandoned job"
    assert 0 < audio_seconds(client) - before <= sum(made) / 16000  # only what was sent counts as generated
    monkeypatch.setattr(teacher, "synthesize_stream", original)
    assert client.post(SYNTHESIZE, files=upload(npz_bytes(8))).status_code == 200


def test_an_error_after_the_wav_header_breaks_the_transfer(
    served: tuple[httpx.Client, Any, InferenceEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the header (which claims the full size) is sent, a failed generation must not end the response
    cleanly: the client sees a broken transfer, never a short file that looks complete."""
    client, teacher, _ = served
    original = teacher.synthesize_stream

    def failing(*args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        chunks = original(*args, **kwargs)
        yield next(chunks)
        raise RuntimeError("generation failed mid-stream")

    monkeypatch.setattr(teacher, "synthesize_stream", failing)
    received = bytearray()
    params = {"stream": "true"}
    with (
        pytest.raises(httpx.TransportError),  # raised while reading the body
        client.stream("POST", SYNTHESIZE, params=params, files=upload(npz_bytes(120))) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_raw():
            received += piece
    assert 44 <= len(received) < 44 + 120 * HOP * 2
    monkeypatch.setattr(teacher, "synthesize_stream", original)
    assert client.post(SYNTHESIZE, files=upload(npz_bytes(8))).status_code == 200
