"""The CUDA-graph Fast WaveNet must compute what `FastWaveNet` and the naive reference compute.

The step program runs eagerly on CPU here (the same tensors and ops the graph records); the tests marked `cuda`
capture and replay real graphs and run only where a GPU is present.
"""

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from tests.conftest import model_and_inputs, random_voicing
from tests.test_lpc import lpc_inputs, lpc_model
from vocoder.generate import CudaGraphWaveNet, FastWaveNet, Sampling, fast_generator, generate_naive
from vocoder.generate.cuda_graph import _StepProgram

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def exact_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 products everywhere: with TF32 the naive reference's convolutions drift by ~1e-3 (measured 6e-2 on
    the logits), enough to move the `mean` strategy's samples; the graph and eager loops agree either way."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("speakers", [["alice", "bob"], []], ids=["local+global", "local"])
def test_step_program_equals_fast_wavenet(kernel_size: int, speakers: list[str]) -> None:
    model, local, speaker_ids = model_and_inputs(kernel_size, speakers, steps=600)
    sampling = Sampling(seed=7)
    uniforms = sampling.uniforms(2, 600)
    reference = FastWaveNet(model).generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    graph = CudaGraphWaveNet(model, capture=False, steps_per_graph=16)
    # 600 samples = 37 full replays of 16 steps and a short last one.
    result = graph.generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    assert torch.equal(result.ids, reference.ids)
    assert torch.equal(result.waveform, reference.waveform)
    assert (result.logits - reference.logits).abs().max() < 1e-5


def test_voicing_tied_temperatures_equal_fast_wavenet() -> None:
    """Each step's temperature is copied in per replay like the uniforms; a plain sampling has its own program."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=320)
    sampling = Sampling(temperature=1.2, voiced_temperature=0.5, top_p=0.95, seed=6)
    uniforms = sampling.uniforms(2, 320)
    temperatures = random_voicing(model, local, sampling)
    graph = CudaGraphWaveNet(model, capture=False, steps_per_graph=16)
    for schedule in (temperatures, None):
        reference = FastWaveNet(model).generate(local, speaker_ids, sampling, uniforms, temperatures=schedule)
        result = graph.generate(local, speaker_ids, sampling, uniforms, temperatures=schedule)
        assert torch.equal(result.ids, reference.ids)
    assert len(graph._programs) == 2


@pytest.mark.parametrize("strategy", ["sample", "argmax", "mean"])
def test_every_strategy_matches_the_naive_reference(strategy: str) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=200)
    sampling = Sampling(strategy=strategy, temperature=0.8, top_k=50, top_p=0.95, seed=3)
    uniforms = sampling.uniforms(2, 200)
    naive = generate_naive(model, local, speaker_ids, sampling, uniforms)
    result = CudaGraphWaveNet(model, capture=False).generate(local, speaker_ids, sampling, uniforms)
    assert torch.equal(result.ids, naive.ids)


def test_programs_are_reused_across_seeds_and_state_is_reset() -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=120)
    graph, fast = CudaGraphWaveNet(model, capture=False), FastWaveNet(model)
    for seed in (1, 2, 1):
        sampling = Sampling(seed=seed)
        uniforms = sampling.uniforms(2, 120)
        expected = fast.generate(local, speaker_ids, sampling, uniforms)
        assert torch.equal(graph.generate(local, speaker_ids, sampling, uniforms).ids, expected.ids)
    assert len(graph._programs) == 1  # one batch size, one sampling setting


def test_streaming_yields_every_sample_in_order_within_the_chunk_size() -> None:
    model, local, _ = model_and_inputs(2, [], batch=1, steps=200)
    sampling = Sampling(seed=4)
    uniforms = sampling.uniforms(1, 200)
    graph = CudaGraphWaveNet(model, capture=False, steps_per_graph=16)
    result = graph.allocate(local)
    ranges = list(graph.stream(local, None, sampling, uniforms, result, chunk_samples=7))
    assert ranges[0][0] == 0 and ranges[-1][1] == 200
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(0 < stop - start <= 7 for start, stop in ranges)
    assert torch.equal(result.ids, FastWaveNet(model).generate(local, None, sampling, uniforms).ids)


def test_a_failed_capture_falls_back_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=80)
    graph = CudaGraphWaveNet(model, capture=False)
    graph.capture = True  # as on a GPU whose driver refuses the capture

    def refuse(self: _StepProgram) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(_StepProgram, "capture", refuse)
    sampling = Sampling(seed=2)
    uniforms = sampling.uniforms(2, 80)
    with caplog.at_level(logging.WARNING):
        result = graph.generate(local, speaker_ids, sampling, uniforms)
    assert "CUDA graph capture failed" in caplog.text
    assert torch.equal(result.ids, FastWaveNet(model).generate(local, speaker_ids, sampling, uniforms).ids)


def test_capture_needs_a_cuda_model() -> None:
    model, _, _ = model_and_inputs(2, [], steps=40)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA model"):
        CudaGraphWaveNet(model, capture=True)


@cuda
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.usefixtures("exact_cuda")
def test_captured_graphs_equal_the_naive_reference_on_cuda(batch: int) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=batch, steps=800)
    model, local = model.cuda(), local.cuda()
    speaker_ids = speaker_ids.cuda()
    sampling = Sampling(seed=9)
    uniforms = sampling.uniforms(batch, 800)
    generator = fast_generator(model)
    assert isinstance(generator, CudaGraphWaveNet) and generator.capture
    result = generator.generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    naive = generate_naive(model, local, speaker_ids, sampling, uniforms, record_logits=True)
    eager = FastWaveNet(model).generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    assert torch.equal(result.ids, naive.ids) and torch.equal(result.ids, eager.ids)
    assert (result.logits - naive.logits).abs().max() < 1e-4
    again = generator.generate(local, speaker_ids, sampling, uniforms)  # replayed, state reset
    assert torch.equal(again.ids, result.ids)


@cuda
@pytest.mark.usefixtures("exact_cuda")
def test_captured_graphs_run_an_lpc_model_as_the_naive_reference_on_cuda() -> None:
    """The prediction, its class and the signal's history inside the captured graph; streamed == whole."""
    model = lpc_model(2)
    local, lpc, speakers = lpc_inputs(model, 2, 800)
    model, local, lpc, speakers = model.cuda(), local.cuda(), lpc.cuda(), speakers.cuda()
    sampling = Sampling(seed=9)
    uniforms = sampling.uniforms(2, 800)
    generator = fast_generator(model)
    assert isinstance(generator, CudaGraphWaveNet) and generator.capture
    result = generator.generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    naive = generate_naive(model, local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    eager = FastWaveNet(model).generate(local, speakers, sampling, uniforms, lpc=lpc)
    assert torch.equal(result.ids, naive.ids) and torch.equal(result.ids, eager.ids)
    assert torch.equal(result.waveform, eager.waveform)
    assert (result.logits - naive.logits).abs().max() < 1e-4
    streamed = generator.allocate(local)
    list(generator.stream(local, speakers, sampling, uniforms, streamed, chunk_samples=100, lpc=lpc))
    assert torch.equal(streamed.ids, result.ids) and torch.equal(streamed.waveform, result.waveform)


@cuda
@pytest.mark.parametrize("strategy", ["sample", "argmax", "mean"])
@pytest.mark.usefixtures("exact_cuda")
def test_every_strategy_is_captured_on_cuda(strategy: str, caplog: pytest.LogCaptureFixture) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=300)
    model, local, speaker_ids = model.cuda(), local.cuda(), speaker_ids.cuda()
    sampling = Sampling(strategy=strategy, temperature=0.8, top_k=50, top_p=0.95, seed=3)
    uniforms = sampling.uniforms(2, 300)
    with caplog.at_level(logging.WARNING):
        result = CudaGraphWaveNet(model).generate(local, speaker_ids, sampling, uniforms)
    assert "capture failed" not in caplog.text
    assert torch.equal(result.ids, generate_naive(model, local, speaker_ids, sampling, uniforms).ids)


@cuda
@pytest.mark.usefixtures("exact_cuda")
def test_bundled_teacher_and_student_synthesize_on_cuda() -> None:
    teacher = vocoder.load("teacher", device="cuda")
    example = EXAMPLES / "slt_0004_mel.npz"
    graph = teacher.synthesize(example, seed=5)
    plain = teacher.synthesize(example, method="fast-torch", seed=5)
    assert isinstance(teacher._fast, CudaGraphWaveNet)
    assert np.array_equal(graph, plain)
    streamed = np.concatenate(list(teacher.synthesize_stream(example, Sampling(seed=5), chunk_samples=1000)))
    assert np.array_equal(streamed, graph)
    student = vocoder.load("student", device="cuda").synthesize(example, seed=5)
    assert student.shape == graph.shape and np.isfinite(student).all()
