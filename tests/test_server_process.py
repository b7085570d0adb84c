"""`vocoder serve` as a real process on 127.0.0.1: start-up, readiness, synthesis, streaming, clean shutdown."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import soundfile

from tests.test_server_support import HOP, build_models_dir, npz_bytes, upload, wait_ready


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_vocoder_serve_answers_on_loopback(tmp_path: Path) -> None:
    models = build_models_dir(tmp_path / "models")
    port = free_port()
    command = [sys.executable, "-m", "vocoder.cli", "serve", "--port", str(port), "--models", str(models)]
    env = {**os.environ, "VOCODER_API_KEY": "k", "VOCODER_DEVICE": "cpu", "VOCODER_TORCH_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
            # A client that hangs up mid-stream frees the worker: the next request does not wait for that audio.
            long_input = upload(npz_bytes(4000))  # 10 s of audio, far longer to generate than the wait below
            with client.stream("POST", "/v1/synthesize", params={"stream": "true"}, files=long_input) as abandoned:
                next(abandoned.iter_raw())
            began = time.monotonic()
            assert client.post("/v1/synthesize", files=upload(npz_bytes(8))).status_code == 200
            assert time.monotonic() - began < 8
            metrics = client.get("/metrics").text
            generated = next(line for line in metrics.splitlines() if line.startswith("vocoder_audio_seconds_total"))
            assert float(generated.split()[-1]) < 10
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert f"127.0.0.1:{port}" in output


def test_vocoder_serve_refuses_bad_settings_in_one_line() -> None:
    env = {**os.environ, "VOCODER_MAX_QUEUE": "0"}
    command = [sys.executable, "-m", "vocoder.cli", "serve"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "max_queue" in result.stderr
