"""The synthesis service in process: happy paths, every error status, auth, queueing, timeouts and batching."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

import vocoder
from tests.test_server_support import HOP, build_models_dir, json_body, npz_bytes, upload, voiced_f0, wait_ready
from vocoder.features.featurefile import read_features
from vocoder.generate import Sampling
from vocoder_server import Settings, create_app
from vocoder_server.inference import Job, ShuttingDown
from vocoder_server.state import ServiceState

SYNTHESIZE = "/v1/synthesize"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_models_dir(tmp_path_factory.mktemp("models"))


@contextmanager
def running(models_dir: Path, raise_server_exceptions: bool = True, **settings: Any) -> Iterator[TestClient]:
    """A started app (lifespan run, models loaded and warmed up) and a client for it."""
    app = create_app(Settings(models_dir=models_dir, device="cpu", **settings))
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        wait_ready(client.get)
        yield client


@pytest.fixture(scope="module")
def client(models_dir: Path) -> Iterator[TestClient]:
    with running(models_dir) as started:
        yield started


def state_of(client: TestClient) -> ServiceState:
    state: ServiceState = client.app.state.service  # type: ignore[attr-defined]
    return state


def decode(content: bytes) -> tuple[np.ndarray, int]:
    wav, rate = soundfile.read(io.BytesIO(content), dtype="float32")
    return wav, rate


def wait_for(condition: Any, seconds: float = 60.0, what: str = "condition not reached") -> None:
    """Poll `condition` until true; the bound is generous (a busy machine), and its failure says what was awaited."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} (waited {seconds:g} s)"
        time.sleep(0.01)


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == response.status_code
    return body


# Happy paths


def test_health_readiness_and_models(client: TestClient, models_dir: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "models": ["solo", "teacher"], "problems": []}
    listed = {item["name"]: item for item in client.get("/v1/models").json()["models"]}
    teacher = vocoder.load(models_dir / "teacher", device="cpu")
    assert listed["teacher"]["conditioning"] == [{"name": "mel", "dim": 10}]
    assert listed["teacher"]["speakers"] == ["alice", "bob"]
    assert listed["teacher"]["receptive_field"] == teacher.model.receptive_field
    assert listed["teacher"]["hop_length"] == HOP and listed["teacher"]["sample_rate"] == 16000
    assert listed["solo"]["conditioning"] == [
        {"name": "mel", "dim": 10},
        {"name": "lf0", "dim": 1},
        {"name": "vuv", "dim": 1},
    ]
    assert listed["solo"]["speakers"] == [] and listed["solo"]["conditioning_dim"] == 12


@pytest.mark.parametrize(
    ("audio_format", "subtype", "container"),
    [
        ("pcm16", "PCM_16", "WAV"),
        ("float", "FLOAT", "WAV"),
        ("flac", "PCM_16", "FLAC"),
    ],
)
def test_upload_returns_audio_in_each_format(
    client: TestClient, audio_format: str, subtype: str, container: str
) -> None:
    response = client.post(SYNTHESIZE, params={"format": audio_format}, files=upload(npz_bytes(frames=8)))
    assert response.status_code == 200, response.text
    info = soundfile.info(io.BytesIO(response.content))
    assert (info.format, info.subtype, info.samplerate, info.frames) == (container, subtype, 16000, 8 * HOP)
    assert response.headers["x-sample-rate"] == "16000" and response.headers["x-model"] == "teacher"
    assert float(response.headers["x-audio-duration"]) == pytest.approx(8 * HOP / 16000)
    assert float(response.headers["x-synthesis-time"]) > 0


def test_seeded_synthesis_matches_the_python_api_and_json_matches_upload(client: TestClient, models_dir: Path) -> None:
    params = {"seed": 3, "format": "float", "temperature": 0.8, "top_k": 50}
    from_upload = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes(frames=8)))
    from_json = client.post(SYNTHESIZE, params=params, json=json_body(frames=8))
    assert from_upload.status_code == from_json.status_code == 200
    # Compare samples, not bytes: a float WAV's PEAK chunk holds a time stamp.
    assert np.array_equal(decode(from_upload.content)[0], decode(from_json.content)[0])
    teacher = vocoder.load(models_dir / "teacher", device="cpu")
    expected = teacher.synthesize(read_features(npz_bytes(frames=8)), seed=3, temperature=0.8, top_k=50)
    assert np.array_equal(decode(from_upload.content)[0], np.clip(expected, -1, 1))


def test_model_and_speaker_selection(client: TestClient) -> None:
    as_alice = client.post(SYNTHESIZE, params={"strategy": "argmax"}, files=upload(npz_bytes()))
    as_bob = client.post(SYNTHESIZE, params={"strategy": "argmax", "speaker": "bob"}, files=upload(npz_bytes()))
    assert as_alice.status_code == as_bob.status_code == 200
    assert not np.array_equal(decode(as_alice.content)[0], decode(as_bob.content)[0])
    frames = 6
    solo_input = npz_bytes(frames, speaker=None, **voiced_f0(frames))
    solo = client.post(SYNTHESIZE, params={"model": "solo"}, files=upload(solo_input))
    assert solo.status_code == 200 and solo.headers["x-model"] == "solo"
    missing = client.post(SYNTHESIZE, params={"model": "solo"}, files=upload(npz_bytes(frames, speaker=None)))
    assert missing.status_code == 422 and error_of(missing)["field"] == "lf0"


def test_stream_sends_a_sized_wav_header_then_the_same_audio(client: TestClient) -> None:
    frames = 120  # 4,800 samples: several chunks of 1,024
    params = {"strategy": "argmax", "format": "float"}
    whole = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes(frames)))
    with client.stream("POST", SYNTHESIZE, params={**params, "stream": "true"}, files=upload(npz_bytes(frames))) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        streamed = b"".join(r.iter_bytes())
    assert len(streamed) == 44 + frames * HOP * 4
    assert np.array_equal(decode(streamed)[0], decode(whole.content)[0])
    with client.stream("POST", SYNTHESIZE, params={"stream": "true"}, files=upload(npz_bytes(frames))) as r:
        pcm = b"".join(r.iter_bytes())
    wav, rate = decode(pcm)
    assert rate == 16000 and len(wav) == frames * HOP and len(pcm) == 44 + frames * HOP * 2


def test_metrics_count_requests_audio_and_queue(client: TestClient) -> None:
    client.post(SYNTHESIZE, files=upload(npz_bytes()))
    client.post(SYNTHESIZE, content=b"x", headers={"content-type": "text/plain"})
    text = client.get("/metrics").text
    assert 'vocoder_requests_total{method="POST",route="/v1/synthesize",status="200"}' in text
    assert 'vocoder_requests_total{method="POST",route="/v1/synthesize",status="415"}' in text
    assert 'vocoder_request_seconds_bucket{le="0.01",route="/v1/synthesize"}' in text
    audio = next(line for line in text.splitlines() if line.startswith('vocoder_audio_seconds_total{model="teacher"}'))
    assert float(audio.split()[-1]) > 0
    assert "vocoder_queue_depth 0.0" in text


def test_openapi_documents_both_bodies(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][SYNTHESIZE]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {p["name"] for p in operation["parameters"]} >= {"model", "method", "strategy", "seed", "format", "stream"}
    assert client.get("/docs").status_code == 200


# Bad input


def test_wrong_media_type_is_415(client: TestClient) -> None:
    response = client.post(SYNTHESIZE, content=npz_bytes(), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"


def test_too_large_is_413_declared_or_chunked(models_dir: Path) -> None:
    with running(models_dir, max_upload_bytes=4096) as small:
        big = npz_bytes(frames=200)
        assert small.post(SYNTHESIZE, files=upload(big)).status_code == 413
        assert small.post(SYNTHESIZE, json=json_body(frames=200)).status_code == 413
        chunked = small.post(
            SYNTHESIZE, content=iter([b"{" + b" " * 3000, b" " * 3000]), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413 and "content-length" not in chunked.request.headers
        assert small.post(SYNTHESIZE, files=upload(npz_bytes(frames=4))).status_code == 200


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy_claiming(shape: tuple[int, ...]) -> bytes:
    """An .npy header claiming `shape` float32, followed by only a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(16)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (npz_bytes(version=np.array(2, dtype=np.int32)), "version"),
        (npz_bytes(mel=np.zeros((8, 7), np.float32)), "mel"),
        (npz_bytes(mel=np.full((8, 10), np.nan, np.float32)), "mel"),
        (npz_bytes(sample_rate=np.array(22050, dtype=np.int32)), "sample_rate"),
        (npz_bytes(hop_length=None), "hop_length"),
        (npz_bytes(pitch=np.zeros(8, np.float32)), "pitch"),
        (npz_bytes(speaker="carol"), "speaker"),
        (npz_bytes(speaker=None), "speaker"),
        (npz_bytes(mel=np.zeros((0, 10), np.float32)), "frames"),
        (npz_bytes(mel=np.array([{"pickle": "refused"}], dtype=object)), "mel"),
        (b"not a zip archive at all", "file"),
        (_zip({"version.npy": _npy_claiming(()), "mel.npy": _npy_claiming((10**9, 10))}), "mel"),
    ],
    ids=[
        "version",
        "dimension",
        "nan",
        "sample-rate",
        "missing-hop",
        "unknown-array",
        "unknown-speaker",
        "no-speaker",
        "no-frames",
        "pickle",
        "not-npz",
        "oversized-claim",
    ],
)
def test_invalid_features_are_422_naming_the_field(client: TestClient, data: bytes, field: str) -> None:
    response = client.post(SYNTHESIZE, files=upload(data))
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


def test_zip_bomb_is_413(client: TestClient) -> None:
    bomb = _zip({"mel.npy": bytes(20 * 1024 * 1024)})  # 20 MiB of zeros in ~20 KiB
    assert len(bomb) < 100_000
    response = client.post(SYNTHESIZE, files=upload(bomb))
    assert response.status_code == 413


def test_too_many_frames_is_422(models_dir: Path) -> None:
    with running(models_dir, max_frames=16) as capped:
        response = capped.post(SYNTHESIZE, files=upload(npz_bytes(frames=17)))
        assert response.status_code == 422 and error_of(response)["field"] == "frames"
        listed = capped.get("/v1/models").json()["models"]
        assert {item["max_frames"] for item in listed} == {16}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": "nan"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"strategy": "greedy"}, "strategy"),
        ({"method": "slow"}, "method"),
        ({"format": "mp3"}, "format"),
        ({"seed": -1}, "seed"),
        ({"model": "nope"}, "model"),
        ({"model": "/etc/passwd"}, "model"),
        ({"unknown": 1}, "unknown"),
        ({"stream": "true", "format": "flac"}, "format"),
        ({"stream": "true", "method": "naive"}, "method"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes()))
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"files": {"other": ("x.npz", npz_bytes(), "application/octet-stream")}}, "features"),
        ({"files": {"features": (None, b"not a file")}}, "features"),
        ({"json": {"hop_length": HOP, "mel": [[0.0] * 10]}}, "sample_rate"),
        ({"json": {**json_body(), "mel": [[0.0] * 10, [0.0] * 9]}}, "mel"),
        ({"json": {**json_body(), "path": "/etc/passwd"}}, "path"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
    ],
)
def test_malformed_bodies_are_422(client: TestClient, kwargs: dict[str, Any], field: str) -> None:
    response = client.post(SYNTHESIZE, **kwargs)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


def test_synthesis_waits_for_the_models_to_load(client: TestClient) -> None:
    registry = state_of(client).registry
    registry.loaded = False  # as during start-up
    try:
        response = client.post(SYNTHESIZE, files=upload(npz_bytes()))
    finally:
        registry.loaded = True
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert "loading" in error_of(response)["message"]


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_readiness_reports_broken_and_missing_models(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(Settings(models_dir=empty, device="cpu"))) as client:
        wait_for(lambda: state_of(client).registry.loaded, 60, "the empty models folder never finished loading")
        response = client.get("/readyz")
        assert response.status_code == 503 and "no models" in response.json()["problems"][0]
        assert client.get("/healthz").status_code == 200
    broken = tmp_path / "broken" / "bad"
    broken.mkdir(parents=True)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with TestClient(create_app(Settings(models_dir=broken.parent, device="cpu"))) as client:
        wait_for(lambda: state_of(client).registry.loaded, 60, "the broken model's folder never finished loading")
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["ready"] is False
        problems = response.json()["problems"]
        assert problems[0].startswith("bad: ") and str(tmp_path) not in problems[0]


# Access control, queueing, timeouts, batching


def test_api_key_is_required_when_configured(models_dir: Path) -> None:
    with running(models_dir, api_key="s3cret") as secured:
        assert secured.get("/v1/models").status_code == 401
        assert secured.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert secured.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert secured.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        refused = secured.post(SYNTHESIZE, files=upload(npz_bytes()))
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert secured.get("/healthz").status_code == 200 and secured.get("/readyz").status_code == 200


@contextmanager
def blocked_teacher(client: TestClient) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the teacher's batches wait for `release`; `entered` is set when a batch starts."""
    model = state_of(client).registry.models["teacher"]
    entered, release = threading.Event(), threading.Event()
    original = model.synthesize_batch

    def blocked(*args: Any, **kwargs: Any) -> list[np.ndarray]:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    model.synthesize_batch = blocked  # type: ignore[method-assign]
    try:
        yield entered, release
    finally:
        release.set()
        model.synthesize_batch = original  # type: ignore[method-assign]


def with_timeout(client: TestClient, seconds: float) -> None:
    """Change the running app's request timeout (its settings are frozen: swap in a copy)."""
    state = state_of(client)
    state.settings = state.settings.model_copy(update={"timeout": seconds})


def test_full_queue_is_503_and_slow_synthesis_is_504(models_dir: Path) -> None:
    """503 while the queue is full (a timeout far longer than the test, so nothing expires early on a busy machine),
    then 504 from a short timeout while the batch is held until the test releases it (it cannot finish in time)."""
    with running(models_dir, max_queue=1, timeout=300.0) as client, ThreadPoolExecutor(2) as pool:
        engine = state_of(client).engine
        with blocked_teacher(client) as (entered, release):
            running_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            assert entered.wait(60)
            queued_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            wait_for(lambda: engine.depth == 1, what="the second request never queued")
            refused = client.post(SYNTHESIZE, files=upload(npz_bytes()))
            assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
            assert error_of(refused)["code"] == "unavailable"
            with client.stream("POST", SYNTHESIZE, params={"stream": "true"}, files=upload(npz_bytes())) as streamed:
                assert streamed.status_code == 503 and streamed.headers["retry-after"] == "2"
                assert json.loads(streamed.read())["error"]["code"] == "unavailable"
            release.set()
            assert running_request.result().status_code == queued_request.result().status_code == 200
        with_timeout(client, 0.5)
        with blocked_teacher(client) as (entered, _):
            running_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            assert entered.wait(60)
            queued_request = pool.submit(client.post, SYNTHESIZE, files=upload(npz_bytes()))
            timed_out = running_request.result()
            assert timed_out.status_code == 504 and error_of(timed_out)["code"] == "timeout"
            assert queued_request.result().status_code == 504
            assert engine.depth == 0  # the timed-out request left the queue
            with client.stream("POST", SYNTHESIZE, params={"stream": "true"}, files=upload(npz_bytes())) as streamed:
                assert streamed.status_code == 504
                assert "did not start" in json.loads(streamed.read())["error"]["message"]
            wait_for(lambda: engine.depth == 0, what="the timed-out stream stayed queued")
        with_timeout(client, 300.0)
        assert client.post(SYNTHESIZE, files=upload(npz_bytes())).status_code == 200


def test_concurrent_requests_are_batched(models_dir: Path) -> None:
    with running(models_dir, max_batch=8) as client, ThreadPoolExecutor(6) as pool:
        engine = state_of(client).engine
        params = {"strategy": "argmax"}
        with blocked_teacher(client) as (entered, release):
            first = pool.submit(client.post, SYNTHESIZE, params=params, files=upload(npz_bytes(8)))
            assert entered.wait(10)
            frames = [8, 9, 10, 11, 12]
            rest = [pool.submit(client.post, SYNTHESIZE, params=params, files=upload(npz_bytes(n))) for n in frames]
            wait_for(lambda: engine.depth == len(frames))
            release.set()
            responses = [first.result(), *(future.result() for future in rest)]
        assert [r.status_code for r in responses] == [200] * 6
        assert [int(r.headers["x-audio-samples"]) for r in responses] == [n * HOP for n in [8, *frames]]
        assert [len(decode(r.content)[0]) for r in responses] == [n * HOP for n in [8, *frames]]
        text = client.get("/metrics").text
        assert "vocoder_batch_size_count 2.0" in text and "vocoder_batch_size_sum 6.0" in text
        # Argmax is deterministic: a batched row equals the same request generated alone.
        alone = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes(10)))
        assert np.allclose(decode(alone.content)[0], decode(responses[3].content)[0], atol=1 / 32767)


def test_stopping_the_engine_drops_queued_jobs(models_dir: Path) -> None:
    with running(models_dir) as client:
        engine = state_of(client).engine
        teacher = state_of(client).registry.models["teacher"]
        features = read_features(npz_bytes(8), source="test").with_speaker("alice")
        with blocked_teacher(client) as (entered, release):
            jobs = [Job(teacher, features, "fast", Sampling("sample", seed=n)) for n in range(3)]
            for job in jobs:
                engine.submit(job)
            assert entered.wait(10)
            stopping = threading.Thread(target=engine.stop)
            stopping.start()
            wait_for(lambda: engine.depth == 0)
            release.set()
            stopping.join(30)
        assert not stopping.is_alive()
        # the queued jobs were dropped, and the running batch ended at its next progress report, not with audio
        assert all(isinstance(job.future.exception(timeout=60), ShuttingDown) for job in jobs)
        with pytest.raises(ShuttingDown):
            engine.submit(Job(teacher, features, "fast", Sampling()))


def test_only_compatible_jobs_share_a_batch(models_dir: Path) -> None:
    teacher = vocoder.load(models_dir / "teacher", device="cpu")
    features = read_features(npz_bytes(8))
    longer = read_features(npz_bytes(17))

    def job(sampling: Sampling, item: Any = features, method: str = "fast") -> Job:
        return Job(teacher, item, method, sampling)  # type: ignore[arg-type]

    base = job(Sampling())
    assert job(Sampling()).fits_with(base)
    assert not job(Sampling(temperature=0.5)).fits_with(base)
    assert not job(Sampling(), method="naive").fits_with(base)
    assert not job(Sampling(), longer).fits_with(base)  # more than twice as long: padding would waste work
    assert job(Sampling("sample", seed=1)).batch_key is None  # seeded sampling reproduces the file alone
    assert job(Sampling("argmax", seed=1)).fits_with(job(Sampling("argmax", seed=1)))


def test_precision_setting_reaches_the_teacher_kernel(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_PRECISION", "int8")
    with running(models_dir) as started:
        assert state_of(started).registry.models["teacher"]._fast.precision == "int8"
        response = started.post(SYNTHESIZE, params={"model": "teacher"}, files=upload(npz_bytes(frames=8)))
        assert response.status_code == 200
    with pytest.raises(ValueError, match="precision"):
        Settings(precision="fp8")  # type: ignore[arg-type]


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.get(SYNTHESIZE)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert error_of(response) == {"status": 405, "code": "method_not_allowed", "message": "Method Not Allowed"}


def test_an_unexpected_error_is_a_500_that_keeps_its_details_in_the_log(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running(models_dir, raise_server_exceptions=False) as client:

        def failing(*args: Any, **kwargs: Any) -> list[np.ndarray]:
            raise RuntimeError("secret internal detail")

        state_of(client).registry.models["teacher"].synthesize_batch = failing  # type: ignore[method-assign]
        response = client.post(SYNTHESIZE, files=upload(npz_bytes()))
        metrics = client.get("/metrics").text
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    message = "internal error; the server log has the details"
    assert response.json() == {"error": {"status": 500, "code": "internal", "message": message}}
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "secret internal detail" in caplog.text
    assert 'vocoder_requests_total{method="POST",route="/v1/synthesize",status="500"} 1.0' in metrics


def test_tts_body_too_large_is_413(models_dir: Path) -> None:
    """The body is refused unread past the cap, before any model or Festival is involved (the 504 of a slow text
    analysis is in tests/test_server_tts_admission.py, beside a model that reads text)."""
    with running(models_dir, max_upload_bytes=4096) as client:
        response = client.post("/v1/tts", json={"text": "word " * 2000, "voice": "slt"})
        assert response.status_code == 413 and error_of(response)["status"] == 413
