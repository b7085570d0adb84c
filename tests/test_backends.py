"""The dispatcher (`vocoder.generate.backends`): what `auto` picks and when it falls back (with a warning that
names why), and a clear error when a backend asked for by name cannot run; `backend=` on the API and the CLI."""

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
import yaml

import vocoder
from tests.conftest import TINY, tiny_config, tone
from tests.test_cli import run
from tests.test_student_kernel import random_student
from vocoder import native
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import save_features
from vocoder.generate import (
    CudaGraphWaveNet,
    FastWaveNet,
    KernelStudent,
    KernelWaveNet,
    TorchStudent,
    backends,
    fast_generator,
    student_generator,
    triton_kernel,
)
from vocoder.generate.triton_kernel import TritonWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.vocabulary import BACKENDS

NO_COMPILER = (None, "CalledProcessError: no compiler")


def teacher() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(tiny_config(speakers=["alice", "bob"])).eval()


def test_the_backends_are_one_vocabulary() -> None:
    assert BACKENDS == ("auto", "cpu-kernel", "torch", "cuda-graph", "triton")
    for bad in ("gpu", "kernel", ""):
        with pytest.raises(VocoderError, match=r"backend: expected one of \['auto', 'cpu-kernel', 'torch'"):
            fast_generator(teacher(), bad)  # type: ignore[arg-type]
        with pytest.raises(VocoderError, match="backend: expected one of"):
            student_generator(random_student(), bad)  # type: ignore[arg-type]


def test_each_backend_by_name_on_cpu() -> None:
    model = teacher()
    assert type(fast_generator(model)) is KernelWaveNet
    assert type(fast_generator(model, "cpu-kernel", "fp16")) is KernelWaveNet
    assert type(fast_generator(model, "torch")) is FastWaveNet
    with pytest.raises(VocoderError, match="backend cuda-graph: the model is on the CPU"):
        fast_generator(model, "cuda-graph")
    with pytest.raises(VocoderError, match="precision int8: only the cpu-kernel backend has one; backend torch"):
        fast_generator(model, "torch", "int8")
    student = random_student()
    assert type(student_generator(student)) is KernelStudent
    assert type(student_generator(student, "cpu-kernel")) is KernelStudent
    assert type(student_generator(student, "torch")) is TorchStudent
    with pytest.raises(VocoderError, match="backend cuda-graph: a student synthesizes in one pass"):
        student_generator(student, "cuda-graph")
    with pytest.raises(VocoderError, match="backend triton: a student synthesizes in one pass"):
        student_generator(student, "triton")


def test_auto_falls_back_with_the_reason_and_a_named_backend_raises_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = teacher().double()
    with caplog.at_level(logging.WARNING):
        assert type(fast_generator(model)) is FastWaveNet
    assert "fused CPU kernel unavailable (the model is torch.float64, the kernel is float32)" in caplog.text
    with pytest.raises(VocoderError, match=r"backend cpu-kernel: .* \(the model is torch.float64, the kernel is"):
        fast_generator(model, "cpu-kernel")
    with pytest.raises(VocoderError, match=r"backend cpu-kernel: .* \(the model is on meta\)"):
        fast_generator(teacher().to("meta"), "cpu-kernel")

    monkeypatch.setattr(native, "_build", lambda source: NO_COMPILER)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert type(student_generator(random_student())) is TorchStudent
    assert "no compiler" in caplog.text
    with pytest.raises(VocoderError, match=r"backend cpu-kernel: the fused CPU kernel .*no compiler"):
        fast_generator(teacher(), "cpu-kernel")
    with pytest.raises(VocoderError, match=r"backend cpu-kernel: the fused student forward .*no compiler"):
        student_generator(random_student(), "cpu-kernel")


def test_triton_by_name_runs_interpreted_on_cpu_and_is_an_error_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU model the Triton kernel runs only under TRITON_INTERPRET (tests/conftest.py sets it without CUDA);
    compiled, asking for it by name is a clear error."""
    model = teacher()
    if triton_kernel._load_kernel()[1]:  # interpreted (no GPU here)
        assert type(fast_generator(model, "triton")) is TritonWaveNet
        assert fast_generator(model, "triton", "fp16").precision == "fp16"
    with pytest.raises(VocoderError, match="precision int8: only the cpu-kernel backend has it; backend triton is"):
        fast_generator(model, "triton", "int8")
    monkeypatch.setattr(triton_kernel, "_load_kernel", lambda: (None, False))
    with pytest.raises(
        VocoderError, match=r"backend triton: the Triton kernel cannot run this model \(the model is on cpu"
    ):
        fast_generator(model, "triton")


def test_auto_on_cuda_takes_triton_for_the_batches_of_its_table(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`TRITON_AUTO_MAX_BATCH` decides (0 until GPU figures exist: graphs for every batch); a kernel that cannot run
    leaves CUDA graphs with a warning naming why. (A CPU model stands in for a CUDA one: graphs run eagerly.)"""
    model = teacher()
    monkeypatch.setattr(backends, "_on_cuda", lambda model: True)
    assert backends.TRITON_AUTO_MAX_BATCH == 0 and type(fast_generator(model)) is CudaGraphWaveNet
    monkeypatch.setattr(backends, "TRITON_AUTO_MAX_BATCH", 4)
    if triton_kernel._load_kernel()[1]:
        generator = fast_generator(model)
        assert type(generator) is TritonWaveNet and generator.graphs_above == 4
    monkeypatch.setitem(sys.modules, "triton", None)
    with caplog.at_level(logging.WARNING):
        assert type(fast_generator(model)) is CudaGraphWaveNet
    assert "Triton kernel unavailable (triton cannot be imported" in caplog.text
    with pytest.raises(VocoderError, match="backend triton: the Triton kernel cannot run this model .*cannot be imp"):
        fast_generator(model, "triton")


def test_the_cli_names_why_triton_cannot_run(
    monkeypatch: pytest.MonkeyPatch, tiny_model_file: Path, features_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(triton_kernel, "_load_kernel", lambda: (None, False))
    wrong = run(
        "synthesize", str(features_file), "--out", str(tmp_path / "x.wav"), "--model", str(tiny_model_file),
        "--device", "cpu", "--backend", "triton",
    )  # fmt: skip
    assert wrong.returncode == 2 and "backend triton: the Triton kernel cannot run this model" in wrong.stderr
    assert "Triton compiles for CUDA" in wrong.stderr and not (tmp_path / "x.wav").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_backends_of_a_model_on_the_gpu() -> None:
    model = teacher().cuda()
    assert type(fast_generator(model)) is CudaGraphWaveNet
    assert type(fast_generator(model, "cuda-graph")) is CudaGraphWaveNet
    assert type(fast_generator(model, "torch")) is FastWaveNet
    with pytest.raises(VocoderError, match=r"backend cpu-kernel: .* \(the model is on cuda:0\)"):
        fast_generator(model, "cpu-kernel")
    assert type(student_generator(random_student().cuda())) is TorchStudent
    assert type(fast_generator(model, "triton")) is TritonWaveNet


@pytest.fixture
def features_file(tmp_path: Path) -> Path:
    return save_features(tmp_path / "tone.npz", extract_features(tone(0.05), tiny_config(), speaker="alice"))


def test_load_takes_a_backend(tiny_model_file: Path, features_file: Path) -> None:
    on_torch = vocoder.load(tiny_model_file, device="cpu", backend="torch")
    assert type(on_torch._fast) is FastWaveNet
    kernel = vocoder.load(tiny_model_file, device="cpu", backend="cpu-kernel")
    assert type(kernel._fast) is KernelWaveNet
    assert (on_torch.synthesize(features_file, seed=4) == kernel.synthesize(features_file, seed=4)).all()
    with pytest.raises(VocoderError, match="backend: expected one of"):
        vocoder.load(tiny_model_file / "absent", backend="fastest")  # type: ignore[arg-type]  # checked first


def test_synthesize_takes_a_backend(tiny_model_file: Path, features_file: Path, tmp_path: Path) -> None:
    outputs = {}
    for backend in ("torch", "cpu-kernel"):
        out = tmp_path / f"{backend}.wav"
        result = run(
            "synthesize", str(features_file), "--out", str(out), "--model", str(tiny_model_file), "--seed", "5",
            "--device", "cpu", "--backend", backend,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[backend] = out.read_bytes()
    assert outputs["torch"] == outputs["cpu-kernel"]
    wrong = run(
        "synthesize", str(features_file), "--out", str(tmp_path / "x.wav"), "--model", str(tiny_model_file),
        "--device", "cpu", "--backend", "cuda-graph",
    )  # fmt: skip
    assert wrong.returncode == 2 and "backend cuda-graph: the model is on the CPU" in wrong.stderr
    assert not (tmp_path / "x.wav").exists()


def test_bench_generation_refuses_an_unknown_backend_at_once() -> None:
    bad = run("bench", "generation", "--config", "seed_size", "--backend", "gpu")
    assert (
        bad.returncode == 2
        and "backend: expected one of ['auto', 'cpu-kernel', 'torch', 'cuda-graph', 'triton']" in bad.stderr
    )


@pytest.mark.slow
def test_bench_generation_times_the_backend_asked_for(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = run(
        "bench", "generation", "--config", str(config), "--json", "--repeats", "1", "--naive-steps", "4",
        "--fast-steps", "50", "--batch-steps", "20", "--batch-sizes", "2", "--student-seconds", "0.05",
        "--backend", "torch",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["fast_generator"] == "FastWaveNet"
