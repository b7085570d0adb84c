"""`vocoder serve` closes connections that send their headers too slowly, or nothing (issue #15)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.test_server_process import free_port
from tests.test_server_support import build_models_dir, wait_ready


def closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes `connection` within `seconds` (reads until EOF or the time is up)."""
    connection.settimeout(seconds)
    try:
        while connection.recv(1024):
            pass
    except TimeoutError:
        return False
    return True


def test_partial_headers_and_silent_connections_are_closed(tmp_path: Path) -> None:
    models = build_models_dir(tmp_path / "models")
    port = free_port()
    command = [sys.executable, "-m", "vocoder.cli", "serve", "--port", str(port), "--models", str(models)]
    env = {**os.environ, "VOCODER_DEVICE": "cpu", "VOCODER_TORCH_THREADS": "1", "VOCODER_HEADER_TIMEOUT": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def get(path: str) -> httpx.Response:
                try:
                    return client.get(path)
                except httpx.TransportError:
                    assert process.poll() is None, "vocoder serve exited during start-up"
                    return httpx.Response(599)

            wait_ready(get, seconds=90)
        silent = socket.create_connection(("127.0.0.1", port))
        trickling = socket.create_connection(("127.0.0.1", port))
        trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        assert closed_within(silent, 8) and closed_within(trickling, 8)
        assert time.monotonic() - began < 8
        with socket.create_connection(("127.0.0.1", port)) as prompt:  # a complete request is still answered
            prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            prompt.settimeout(10)
            assert prompt.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        process.terminate()
        process.wait(180)  # a graceful stop; slow only when the machine is loaded
