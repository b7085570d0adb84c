"""`vocoder serve` closes connections that send their headers too slowly, or nothing (issue #15)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.test_server_support import build_models_dir, serving, wait_ready
from vocoder_server import Settings, create_app


def closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes `connection` within `seconds` (reads until EOF or the time is up)."""
    connection.settimeout(seconds)
    try:
        while connection.recv(1024):
            pass
    except TimeoutError:
        return False
    return True


def test_partial_headers_and_silent_connections_are_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served as `vocoder serve` serves it (its server class and uvicorn settings; the process itself is
    test_server_process's), with the deadline from the environment."""
    monkeypatch.setenv("VOCODER_HEADER_TIMEOUT", "1")
    settings = Settings(models_dir=build_models_dir(tmp_path / "models"), device="cpu")
    assert settings.header_timeout == 1
    with serving(create_app(settings), settings) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            wait_ready(client.get, seconds=90)
        address = httpx.URL(url)
        silent = socket.create_connection((address.host, address.port))
        trickling = socket.create_connection((address.host, address.port))
        trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        assert closed_within(silent, 8) and closed_within(trickling, 8)
        assert time.monotonic() - began < 8
        with socket.create_connection((address.host, address.port)) as prompt:  # a complete request is still answered
            prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            prompt.settimeout(10)
            assert prompt.recv(1024).startswith(b"HTTP/1.1 200")
