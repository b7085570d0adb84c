"""Admission (issue #15): naive generation is off unless enabled and then capped, a slow job never holds a fast
one back, and a request whose client left stops its generation."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_server import running, state_of
from tests.test_server_support import build_models_dir, npz_bytes, upload
from vocoder.features.featurefile import read_features
from vocoder.generate import Sampling
from vocoder_server.errors import CLIENT_CLOSED, ApiError
from vocoder_server.inference import Job
from vocoder_server.routes import _unless_gone

SYNTHESIZE = "/v1/synthesize"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_models_dir(tmp_path_factory.mktemp("models"))


def test_naive_is_off_by_default_and_capped_when_enabled(models_dir: Path) -> None:
    with running(models_dir) as client:
        refused = client.post(SYNTHESIZE, params={"method": "naive"}, files=upload(npz_bytes(8)))
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "method"
    with running(models_dir, naive_max_frames=8) as client:
        assert client.post(SYNTHESIZE, params={"method": "naive"}, files=upload(npz_bytes(8))).status_code == 200
        longer = client.post(SYNTHESIZE, params={"method": "naive"}, files=upload(npz_bytes(9)))
        assert longer.status_code == 422 and longer.json()["error"]["field"] == "frames"


def test_a_running_naive_job_does_not_hold_back_a_fast_one(models_dir: Path) -> None:
    with running(models_dir, naive_max_frames=8, timeout=20) as client, ThreadPoolExecutor(1) as pool:
        model = state_of(client).registry.models["teacher"]
        original = model.synthesize_batch
        entered, release = threading.Event(), threading.Event()
        paused_while_fast_ran: list[bool] = []

        def slow_naive(features: Any, method: Any = None, sampling: Any = None, **kwargs: Any) -> Any:
            if method != "naive":
                return original(features, method, sampling, **kwargs)
            entered.set()
            while not release.is_set():  # a long generation reporting progress between its chunks
                kwargs["progress"](256)
                time.sleep(0.01)
            return original(features, method, sampling, **kwargs)

        model.synthesize_batch = slow_naive  # type: ignore[method-assign]
        naive = pool.submit(client.post, SYNTHESIZE, params={"method": "naive"}, files=upload(npz_bytes(8)))
        assert entered.wait(10)
        began = time.monotonic()
        fast = client.post(SYNTHESIZE, files=upload(npz_bytes(8)))
        assert fast.status_code == 200 and time.monotonic() - began < 5
        paused_while_fast_ran.append(not naive.done())
        release.set()
        assert naive.result().status_code == 200
        assert paused_while_fast_ran == [True]


def test_a_slow_lane_pauses_while_a_cheaper_lane_has_work(models_dir: Path) -> None:
    with running(models_dir) as client:
        engine = state_of(client).engine
        teacher = state_of(client).registry.models["teacher"]
        features = read_features(npz_bytes(8), source="test").with_speaker("alice")
        naive_job = Job(teacher, features, "naive", Sampling())
        fast_lane, reference = engine.lanes["autoregressive"], engine.lanes["reference"]
        fast_lane._running.add(Job(teacher, features, "fast", Sampling()))  # the fast lane is busy
        passed = threading.Event()
        waiter = threading.Thread(target=lambda: (reference._checkpoint([naive_job]), passed.set()))
        waiter.start()
        assert not passed.wait(0.3)  # paused between two chunks
        fast_lane._running.clear()
        assert passed.wait(5)
        waiter.join()


class _LeavingClient:
    """A request whose client disconnects after `after` seconds."""

    def __init__(self, after: float) -> None:
        self.leaves = time.monotonic() + after

    async def is_disconnected(self) -> bool:
        return time.monotonic() >= self.leaves


def test_a_non_streamed_request_whose_client_left_abandons_its_job(models_dir: Path) -> None:
    with running(models_dir) as client:
        engine = state_of(client).engine
        teacher = state_of(client).registry.models["teacher"]
        features = read_features(npz_bytes(8), source="test").with_speaker("alice")
        job = Job(teacher, features, "fast", Sampling())
        reached = threading.Event()
        original = teacher.synthesize_batch

        def endless(*args: Any, **kwargs: Any) -> list[np.ndarray]:
            reached.set()
            while True:  # stops only when the progress callback says nobody waits
                kwargs["progress"](256)
                time.sleep(0.01)

        teacher.synthesize_batch = endless  # type: ignore[method-assign]
        try:

            async def scenario() -> None:
                with pytest.raises(ApiError) as gone:
                    await _unless_gone(_LeavingClient(0.5), engine.run(job, 30))  # type: ignore[arg-type]
                assert gone.value.status == CLIENT_CLOSED

            asyncio.run(scenario())
            assert reached.is_set() and job.abandoned
            assert job.future.exception(timeout=5) is not None  # the generation stopped at its next chunk
        finally:
            teacher.synthesize_batch = original  # type: ignore[method-assign]
