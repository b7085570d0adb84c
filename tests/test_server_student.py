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
