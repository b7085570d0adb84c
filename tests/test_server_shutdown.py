"""A service that shuts down while jobs run or wait answers them 503 (`shutting_down`, with Retry-After), never a
500: in process when the engine stops (the lifespan's end), and under uvicorn when it is told to exit."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.test_server import SYNTHESIZE, blocked_teacher, error_of, running, state_of, wait_for
from tests.test_server_support import build_models_dir, npz_bytes, upload, wait_ready
from vocoder_server import Settings, create_app
from vocoder_server.linguistic import TextAnalysis


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_models_dir(tmp_path_factory.mktemp("models"))


def _shutting_down(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert error_of(response)["code"] == "shutting_down"
    assert response.headers["retry-after"] == "2"


def test_stopping_the_engine_ends_running_and_queued_requests_with_503(models_dir: Path) -> None:
    with running(models_dir, timeout=300.0) as client, ThreadPoolExecutor(3) as pool:
        engine = state_of(client).engine
        with blocked_teacher(client) as (entered, release):
            running_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            assert entered.wait(60)
            queued_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            wait_for(lambda: engine.depth == 1, what="the second request never queued")
            stopping = pool.submit(engine.stop)  # what the lifespan's end does
            wait_for(lambda: engine.depth == 0, what="the queued job stayed queued")
            release.set()
            stopping.result(60)
            _shutting_down(running_request.result(60))
            _shutting_down(queued_request.result(60))
        _shutting_down(client.post(SYNTHESIZE, files=upload(npz_bytes())))  # arriving after the stop
        streamed = client.post(SYNTHESIZE, params={"stream": "true"}, files=upload(npz_bytes()))
        _shutting_down(streamed)
        assert 'status="500"' not in client.get("/metrics").text


def test_text_analysis_after_its_stop_is_shutting_down() -> None:
    import asyncio

    from vocoder_server.inference import ShuttingDown

    analysis = TextAnalysis(workers=1, max_queue=1)
    analysis.stop()
    with pytest.raises(ShuttingDown):
        asyncio.run(analysis.features("Hello.", "slt", "slt", None, 1.0))  # type: ignore[arg-type]


def test_uvicorn_told_to_exit_mid_job_answers_503_and_exits(models_dir: Path) -> None:
    """The served process's exit (SIGTERM or ^C: uvicorn's `should_exit`) ends a running job with a 503 after
    `shutdown_grace` seconds instead of waiting for its generation, and the server exits."""
    from vocoder_server.serving import ServiceServer, service_config

    settings = Settings(models_dir=models_dir, device="cpu", port=0, timeout=3600.0, shutdown_grace=0.2)
    app = create_app(settings)
    server = ServiceServer(service_config(app, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    with ThreadPoolExecutor(1) as pool:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        wait_ready(http.get)
        client = type("Holder", (), {"app": app})()
        engine = app.state.service.engine
        with blocked_teacher(client) as (entered, release):  # type: ignore[arg-type]
            request = pool.submit(http.post, SYNTHESIZE, files=upload(npz_bytes()))
            assert entered.wait(60)
            began = time.monotonic()
            server.should_exit = True
            wait_for(lambda: engine.stopped, what="the engine was not stopped after the grace period")
            release.set()  # the job goes on, to its next progress report
            response = request.result(60)
        _shutting_down(response)
        thread.join(600)
        assert not thread.is_alive()
        # Generous for a loaded 2-core machine, and still far from the request's 3,600-s timeout it must not wait for.
        elapsed = time.monotonic() - began
        assert elapsed < 600, f"the server took {elapsed:.0f} s to end the job: it waited for the request's timeout"
