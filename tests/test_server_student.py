"""The service with a Parallel WaveNet student beside a teacher: default methods by kind, streaming, bad methods."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient

from tests.conftest import tiny_config
from tests.test_server_support import npz_bytes, upload, wait_ready
from tests.test_student import STUDENT
from vocoder.models.checkpoint import save_model
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder_server.app import create_app
from vocoder_server.settings import Settings

SYNTHESIZE = "/v1/synthesize"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    teacher = tiny_config()
    save_model(root / "teacher" / "model.safetensors", WaveNet(teacher), teacher, "teacher", {})
    student = tiny_config(student=STUDENT)
    save_model(root / "student" / "model.safetensors", StudentWaveNet(student), student, "student", {})
    with TestClient(create_app(Settings(models_dir=root, device="cpu"))) as started:
        wait_ready(started.get)
        yield started


def test_each_kind_synthesizes_with_its_default_method(client: TestClient) -> None:
    kinds = {model["name"]: model["kind"] for model in client.get("/v1/models").json()["models"]}
    assert kinds == {"student": "student", "teacher": "teacher"}
    for name in kinds:
        answer = client.post(SYNTHESIZE, params={"model": name, "seed": 1}, files=upload(npz_bytes(6)))
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-audio-samples"] == str(6 * 40)


def test_a_method_of_the_other_kind_is_a_422_naming_the_field(client: TestClient) -> None:
    for name, method in (("student", "fast"), ("teacher", "student")):
        answer = client.post(SYNTHESIZE, params={"model": name, "method": method}, files=upload(npz_bytes(6)))
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == "method"


def test_a_student_streams_the_same_audio(client: TestClient) -> None:
    params = {"model": "student", "seed": 3}
    whole = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes(30)))
    streamed = client.post(SYNTHESIZE, params={**params, "stream": True}, files=upload(npz_bytes(30)))
    assert streamed.status_code == 200 and whole.status_code == 200
    assert streamed.content[44:] == whole.content[44:]


def test_settings_a_model_ignores_are_named_in_a_header_and_the_audio_is_unchanged(client: TestClient) -> None:
    """A student draws from noise that only the seed and its temperatures set: strategy, top_k and top_p change
    nothing, and the answer says which of those given it ignored (as the CLI's note does) rather than accept them
    silently; a temperature scales its noise, streamed or not."""
    plain = client.post(SYNTHESIZE, params={"model": "student", "seed": 3}, files=upload(npz_bytes(6)))
    assert "x-ignored-settings" not in plain.headers
    shaped = {"strategy": "mean", "top_k": 5, "top_p": 0.9}
    quiet = client.post(
        SYNTHESIZE, params={"model": "student", "seed": 3, "temperature": 0.5}, files=upload(npz_bytes(6))
    )
    assert "x-ignored-settings" not in quiet.headers and quiet.content[44:] != plain.content[44:]
    for stream in (False, True):
        for temperature, expected in ((None, plain), (0.5, quiet)):
            params = {"model": "student", "seed": 3, "stream": stream, **shaped}
            if temperature is not None:
                params["temperature"] = temperature
            answer = client.post(SYNTHESIZE, params=params, files=upload(npz_bytes(6)))
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-ignored-settings"] == "strategy, top_k, top_p"
            assert answer.content[44:] == expected.content[44:]
    argmax = {"model": "teacher", "strategy": "argmax", "temperature": 0.5, "speaker": "alice"}
    answer = client.post(SYNTHESIZE, params=argmax, files=upload(npz_bytes(6)))
    assert answer.headers["x-ignored-settings"] == "temperature"
    sampled = client.post(SYNTHESIZE, params={**argmax, "strategy": "sample"}, files=upload(npz_bytes(6)))
    assert "x-ignored-settings" not in sampled.headers


def test_top_k_has_one_limit_in_the_schema_and_the_api(client: TestClient) -> None:
    from vocoder.constants import TOP_K_MAX
    from vocoder.generate import Sampling, SamplingError

    answer = client.post(SYNTHESIZE, params={"model": "teacher", "top_k": TOP_K_MAX + 1}, files=upload(npz_bytes(6)))
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "top_k"
    largest = client.post(SYNTHESIZE, params={"model": "teacher", "top_k": TOP_K_MAX}, files=upload(npz_bytes(6)))
    assert largest.status_code == 200
    Sampling(top_k=TOP_K_MAX)
    with pytest.raises(SamplingError, match=f"top_k: expected an integer from 1 to {TOP_K_MAX}"):
        Sampling(top_k=TOP_K_MAX + 1)
