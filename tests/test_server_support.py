"""Helpers of the server tests (no tests here): a folder of tiny random teachers, feature files as bytes."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn

from tests.conftest import tiny_config
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings
from vocoder_server.serving import ServiceServer, service_config

HOP = 40
N_MELS = 10


def build_models_dir(root: Path) -> Path:
    """`teacher` (mel, speakers alice/bob) and `solo` (mel + lf0 + vuv, no speakers), random weights."""
    torch.manual_seed(0)
    config = tiny_config()
    save_model(root / "teacher" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    solo = tiny_config(name="solo", features={"conditioning": ["mel", "lf0", "vuv"]}, speakers=[])
    save_model(root / "solo" / "model.safetensors", WaveNet(solo), solo, "teacher", {"steps": 0})
    return root


def npz_bytes(frames: int = 8, speaker: str | None = "alice", **overrides: Any) -> bytes:
    """A feature file for `teacher` as uploaded bytes; `overrides` replace or add arrays (None removes one)."""
    rng = np.random.default_rng(frames)
    payload: dict[str, Any] = {
        "version": np.array(1, dtype=np.int32),
        "sample_rate": np.array(16000, dtype=np.int32),
        "hop_length": np.array(HOP, dtype=np.int32),
        "mel": rng.standard_normal((frames, N_MELS)).astype(np.float32),
    }
    if speaker is not None:
        payload["speaker"] = np.array(speaker)
    payload.update(overrides)
    buffer = io.BytesIO()
    np.savez(buffer, **{key: value for key, value in payload.items() if value is not None})
    return buffer.getvalue()


def voiced_f0(frames: int, hz: float = 150.0) -> dict[str, np.ndarray]:
    """A feature file's `lf0` and `vuv` voiced throughout at `hz`: the recording's F0 that a model reading it (a
    student's harmonic source, `solo`) takes beside the mel; `npz_bytes(frames, **voiced_f0(frames))`."""
    return {"lf0": np.full(frames, np.log(hz), np.float32), "vuv": np.ones(frames, np.float32)}


def json_body(frames: int = 8, speaker: str | None = "alice") -> dict[str, Any]:
    mel = np.random.default_rng(frames).standard_normal((frames, N_MELS)).astype(np.float32)
    return {"sample_rate": 16000, "hop_length": HOP, "mel": mel.tolist(), "speaker": speaker}


def upload(data: bytes, name: str = "utterance.npz") -> dict[str, tuple[str, bytes, str]]:
    return {"features": (name, data, "application/octet-stream")}


def wait_ready(get: Any, seconds: float = 60.0) -> None:
    """Poll /readyz through `get(path)` until it answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {seconds} s: {get('/readyz').text}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(app: Any, settings: Settings | None = None) -> Iterator[str]:
    """`app` served by uvicorn on a loopback port in a thread (real sockets: a client can hang up mid-stream, which
    the in-process TestClient cannot do); yields the base URL, and stops the server on exit. With `settings`, served
    as `vocoder serve` serves it: its server class and uvicorn settings (header deadline, keep-alive), on a free
    port in place of `settings.port`."""
    if settings is None:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    else:
        on_loopback = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
        server = ServiceServer(service_config(app, on_loopback, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 180  # generous: a loaded 2-core machine, not the service, sets this time
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start within 180 s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(180)
