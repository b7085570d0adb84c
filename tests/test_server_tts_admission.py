"""`/v1/tts` admission (issue #15): a text's frame estimate is refused before Festival runs, Festival has its own
bounded pool apart from uploads, and a Festival process past its time limit is killed."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

import vocoder.frontend.features
import vocoder_server.linguistic
from tests.conftest import tiny_config
from tests.test_server_support import build_models_dir, npz_bytes, upload, wait_ready
from vocoder.features.linguistic import linguistic_dim
from vocoder.frontend.festival import FestivalTimeout, run_festival
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings, create_app

TTS = "/v1/tts"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_models_dir(tmp_path_factory.mktemp("models"))
    torch.manual_seed(0)
    features = {"conditioning": ["linguistic", "lf0", "vuv"], "linguistic_dim": linguistic_dim()}
    config = tiny_config(name="ling", features=features, speakers=["slt", "kal", "ked"])
    save_model(root / "ling" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    return root


@pytest.fixture
def client(models_dir: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    settings = getattr(request, "param", {})
    with TestClient(create_app(Settings(models_dir=models_dir, device="cpu", **settings))) as started:
        wait_ready(started.get)
        yield started


@pytest.fixture
def festival_blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Festival stand-in that waits for `release`; `entered` is set when it starts."""
    entered, release = threading.Event(), threading.Event()

    def blocked(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        raise vocoder_server.linguistic.FestivalError("stand-in")

    monkeypatch.setattr(vocoder.frontend.features, "run_festival", blocked)  # what the service's analyse_text runs
    monkeypatch.setattr(vocoder_server.linguistic, "festival_binary", lambda: "festival")
    yield entered, release
    release.set()


@pytest.mark.parametrize("client", [{"max_frames": 400}], indirect=True)
def test_a_text_too_long_for_the_frame_cap_is_refused_before_festival(
    client: TestClient, festival_blocked: tuple[threading.Event, threading.Event]
) -> None:
    entered, _ = festival_blocked
    response = client.post(TTS, params={"model": "ling"}, json={"text": "1 " * 200})
    assert response.status_code == 422 and response.json()["error"]["field"] == "text"
    assert not entered.is_set()


def test_tts_text_length_is_bounded(client: TestClient) -> None:
    response = client.post(TTS, params={"model": "ling"}, json={"text": "a" * 501})
    assert response.status_code == 422 and response.json()["error"]["field"] == "text"


@pytest.mark.parametrize("client", [{"tts_workers": 1, "tts_queue": 0}], indirect=True)
def test_festival_has_its_own_bounded_pool(
    client: TestClient, festival_blocked: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = festival_blocked
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, TTS, params={"model": "ling"}, json={"text": "Hello."})
        assert entered.wait(10)
        refused = client.post(TTS, params={"model": "ling"}, json={"text": "Hello."})
        assert refused.status_code == 503 and "retry-after" in refused.headers
        uploaded = client.post("/v1/synthesize", params={"model": "teacher"}, files=upload(npz_bytes(8)))
        assert uploaded.status_code == 200  # uploads do not wait for Festival
        release.set()
        assert first.result().status_code == 422


@pytest.mark.skipif(shutil.which("festival") is None, reason="needs Festival (make install)")
def test_festival_past_its_time_limit_is_killed(tmp_path: Path) -> None:
    with pytest.raises(FestivalTimeout):
        run_festival(["A sentence that takes Festival a moment to analyse."], "kal", tmp_path, timeout=0.05)


def test_text_analysis_past_the_request_timeout_is_504(
    client: TestClient, festival_blocked: tuple[threading.Event, threading.Event]
) -> None:
    """Festival is held by the test past the request's timeout (2 s: hundreds of times what the pool's thread takes
    to reach it, even on a loaded machine): the request ends in a 504 naming the text analysis, whatever Festival
    does later."""
    entered, _ = festival_blocked
    state = client.app.state.service
    state.settings = state.settings.model_copy(update={"timeout": 2.0})
    response = client.post(TTS, json={"text": "Yes.", "voice": "slt"})
    assert entered.is_set(), response.text
    error = response.json()["error"]
    assert response.status_code == 504 and error["code"] == "timeout" and "text analysis" in error["message"]
