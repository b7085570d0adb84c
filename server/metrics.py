"""Prometheus metrics, one registry per app (so several apps in one process, as in tests, do not collide)."""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
"""The `method` label's values; any other method a client invents is counted as `other`, so labels stay few."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Requests by route and status, their latency, audio generated, queue depth and batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vocoder_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vocoder_request_seconds",
            "time to the response headers (a stream's body continues after)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "vocoder_audio_seconds", "seconds of audio generated", ["model"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "vocoder_queue_depth", "requests waiting for an inference worker", registry=self.registry
        )
        self.batch_size = Histogram(
            "vocoder_batch_size",
            "utterances per generation batch",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Count every request under its route template (not its raw path: unknown paths share one label).

        Plain ASGI, not `BaseHTTPMiddleware`: that one ends a streamed body cleanly when the app fails mid-stream
        (its last empty chunk follows the error), so a client would get a short WAV whose header claims the full
        size; here the error reaches the server, which breaks the transfer."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            began = time.perf_counter()
            status: int | None = None

            def record(code: int) -> None:
                label = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
                self.requests.labels(label, method, str(code)).inc()
                self.latency.labels(label).observe(time.perf_counter() - began)

            async def send_counted(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start" and status is None:
                    status = message["status"]
                    record(status)  # time to the response headers
                await send(message)

            try:
                await app(scope, receive, send_counted)
            finally:
                if status is None:  # an exception escaping the handlers becomes a 500 outside this middleware
                    record(500)

        return counted
