"""The uvicorn server `vocoder serve` runs, with a bounded shutdown.

uvicorn's own shutdown stops accepting connections, then waits for every open request to end, without a limit,
before the application's lifespan ends; a teacher's generation can run for a minute, a naive one for longer. Here
running and queued jobs get `shutdown_grace` seconds to finish; then the engine stops, so what is left ends with
a 503 (`shutting_down`, which a client retries elsewhere) at its next progress report, the connections close and
the lifespan ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from vocoder_server.protocol import with_header_timeout
from vocoder_server.settings import Settings
from vocoder_server.state import ServiceState

GRACE_POLL_SECONDS = 0.05


def service_config(app: FastAPI, settings: Settings, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for `app`: address, header deadline, keep-alive timeout."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        http=with_header_timeout(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,
    )


class ServiceServer(uvicorn.Server):
    """`uvicorn.Server` whose shutdown ends the service's jobs after a grace period instead of waiting for them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, except that a stop asked for by SIGINT or SIGTERM ends with exit status 0.

        uvicorn re-raises the signal after its graceful shutdown, so the process would end as if killed (status 130
        or 143) although every job was ended; a supervisor reads that as a crash.
        """
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        state: ServiceState = app.state.service
        for listener in self.servers:  # no new connections while the jobs finish (uvicorn closes them again)
            listener.close()
        deadline = time.monotonic() + state.settings.shutdown_grace
        while state.engine.busy and time.monotonic() < deadline and not self.force_exit:
            await asyncio.sleep(GRACE_POLL_SECONDS)
        state.text_analysis.stop()
        await asyncio.to_thread(state.engine.stop)
        await super().shutdown(sockets)
