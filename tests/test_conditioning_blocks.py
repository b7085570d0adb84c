"""Conditioning upsampled block by block (#22): the polyphase upsampler computes what the Conv2d one did, blocks are
bitwise slices of the whole, and every generator reads one block at a time, so memory and the wait for the first
streamed sample do not grow with the utterance."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import vocoder
from tests.conftest import tiny_config
from tests.test_student_kernel import inputs, random_student
from vocoder.bench.memory_probe import tiled
from vocoder.errors import VocoderError
from vocoder.generate import CudaGraphWaveNet, FastWaveNet, KernelStudent, KernelWaveNet, Sampling, TorchStudent
from vocoder.generate.cpu_kernel import BLOCK_SAMPLES
from vocoder.generate.student_kernel import CHUNK_CONDITIONING_BYTES, FIRST_CHUNK_SAMPLES
from vocoder.models.conditioning import Conditioning, UpsampledConditioning
from vocoder.models.layers import ConditioningUpsampler
from vocoder.models.wavenet import WaveNet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ABSOLUTE_ERROR = 1e-5
"""Stated bound on |polyphase - Conv2d| of the shipped models' upsampled conditioning (measured at most 3.8e-6)."""
RELATIVE_ERROR = 1e-6
"""...and relative to the largest |value| (measured at most 4.4e-7): float32 rounding, the taps summed first."""


def conv2d_upsample(upsampler: ConditioningUpsampler, frames: torch.Tensor) -> torch.Tensor:
    """The upsampler as it was before #22: edges repeated, prenet, each stage a stretch then a Conv2d smoother."""
    edge = upsampler.edge_frames
    x = upsampler.prenet(F.pad(frames, (edge, edge), mode="replicate")).unsqueeze(1)
    for scale, smoother in zip(upsampler.scales, upsampler.smoothers, strict=True):
        x = F.conv2d(x.repeat_interleave(scale, dim=-1), smoother.weight, padding=(0, scale))
    crop = edge * upsampler.hop
    return x.squeeze(1)[..., crop:-crop]


@pytest.mark.parametrize("name", ["teacher", "tts-teacher", "student"])
@torch.inference_mode()
def test_the_shipped_upsamplers_compute_what_the_conv2d_form_did(name: str) -> None:
    model = vocoder.load(name, device="cpu")
    for path in sorted(EXAMPLES.glob("*.npz")):
        try:
            features = model.features(path)
        except VocoderError:  # the other kind of features
            continue
        frames = torch.from_numpy(features.conditioning(model.config))[None].transpose(1, 2)
        expected, got = conv2d_upsample(model.model.upsampler, frames), model.model.upsampler(frames)
        assert got.shape == expected.shape
        error = (got - expected).abs().max().item()
        assert error < ABSOLUTE_ERROR and error < RELATIVE_ERROR * expected.abs().max().item()


@pytest.mark.parametrize(("scales", "prenet"), [([4, 5, 10], 3), ([4, 4, 5], 5), ([2, 3], 1), ([7], 3)])
@torch.inference_mode()
def test_blocks_anywhere_are_bitwise_slices_of_the_whole(scales: list[int], prenet: int) -> None:
    torch.manual_seed(0)
    upsampler = ConditioningUpsampler(6, 5, scales, prenet)
    for smoother in upsampler.smoothers:
        torch.nn.init.normal_(smoother.weight)  # not the symmetric moving average: every tap matters
    frames = torch.randn(2, 6, 13)
    whole = upsampler(frames)
    assert torch.allclose(whole, conv2d_upsample(upsampler, frames), atol=1e-5)
    conditioning = upsampler.conditioning(frames)
    steps = conditioning.shape[-1]
    assert whole.shape == (2, 5, steps) == (2, 5, 13 * math.prod(scales))
    cuts = sorted({0, steps, *torch.randint(1, steps, (12,)).tolist()})
    blocks = [conditioning.block(start, stop) for start, stop in itertools.pairwise(cuts)]
    assert torch.equal(torch.cat(blocks, -1), whole)
    assert torch.equal(conditioning.block(steps - 1, steps), whole[..., -1:])


class Recorded(Conditioning):
    """A conditioning that remembers which blocks were read."""

    def __init__(self, inner: Conditioning) -> None:
        self.inner, self.reads = inner, []
        self.shape, self.device, self.dtype = inner.shape, inner.device, inner.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        self.reads.append((start, stop))
        return self.inner.block(start, stop)


def tiny_teacher() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(tiny_config(speakers=["alice", "bob"])).eval()


@pytest.mark.parametrize("generator", ["kernel", "fast-torch", "cuda-graph-eager"])
@torch.inference_mode()
def test_teacher_generators_upsample_each_block_when_they_reach_it(generator: str) -> None:
    model = tiny_teacher()
    make = {"kernel": KernelWaveNet, "fast-torch": FastWaveNet, "cuda-graph-eager": CudaGraphWaveNet}[generator]
    fast = make(model) if generator != "cuda-graph-eager" else CudaGraphWaveNet(model, capture=False)
    frames = torch.randn(2, 65, model.config.features.dim)  # 2,600 samples: past one kernel block (BLOCK_SAMPLES)
    lazy = Recorded(model.conditioning(frames))
    speakers, sampling = torch.tensor([0, 1]), Sampling(seed=1)
    uniforms = sampling.uniforms(2, lazy.shape[-1])
    result = fast.allocate(lazy, record_logits=True)
    stream = fast.stream(lazy, speakers, sampling, uniforms, result, chunk_samples=500)
    assert next(stream) == (0, 500)
    assert max(stop for _, stop in lazy.reads) <= 512  # nothing past the first chunk (in 16-step graphs) yet
    for _ in stream:
        pass
    assert lazy.shape[-1] > BLOCK_SAMPLES and max(stop - start for start, stop in lazy.reads) <= BLOCK_SAMPLES
    whole = fast.generate(lazy.inner.whole(), speakers, sampling, uniforms, record_logits=True)
    assert torch.equal(result.ids, whole.ids) and torch.equal(result.logits, whole.logits)


@pytest.mark.parametrize("forward", ["kernel", "torch"])
@torch.inference_mode()
def test_student_chunks_are_the_whole_pass(forward: str) -> None:
    """Bitwise for the fused forward; PyTorch's convolutions round differently by length (measured 4.5e-8)."""
    model = random_student()
    student = KernelStudent(model) if forward == "kernel" else TorchStudent(model)
    student.min_chunk_samples, student.chunk_bytes = 3 * model.receptive_field, 0  # many chunks: 2,048, 3,120...
    frames, speakers, uniforms = inputs(model, 2, 500)  # 20,000 samples
    lazy = Recorded(model.conditioning(frames))
    whole = student.one_pass(model.upsample(frames), speakers, uniforms)
    stream = student.stream(lazy, speakers, uniforms)
    start, first = next(stream)
    assert start == 0 and first.shape == (2, FIRST_CHUNK_SAMPLES) and lazy.reads == [(0, FIRST_CHUNK_SAMPLES)]
    chunks = torch.cat([first, *(chunk for _, chunk in stream)], 1)
    reads = [stop - start for start, stop in lazy.reads]
    assert max(reads) == student.min_chunk_samples + model.receptive_field - 1
    lazy.reads.clear()
    got = student.generate(lazy, speakers, uniforms)
    assert lazy.reads[0] == (0, student.min_chunk_samples)  # a whole synthesis starts with a full chunk
    if forward == "kernel":
        assert torch.equal(got, chunks) and torch.equal(got, whole)
    else:
        assert (got - whole).abs().max().item() < 1e-6 and (got - chunks).abs().max().item() < 1e-6


def test_a_full_student_chunk_holds_the_stated_conditioning_bytes() -> None:
    """Few long chunks (each costs fixed PyTorch ops and a start of the forward's threads), memory still bounded:
    a full chunk's conditioning is CHUNK_CONDITIONING_BYTES whatever the batch, down to the receptive-field floor."""
    model = vocoder.load("student", device="cpu")
    student = model._student
    assert student is not None
    channels = model.model.local_channels
    for batch in (1, 2, 8):
        local = torch.empty(batch, channels, 1)
        full = student.full_chunk(local)
        assert full == max(student.min_chunk_samples, CHUNK_CONDITIONING_BYTES // (4 * batch * channels))
    assert student.full_chunk(torch.empty(1, channels, 1)) == 1 << 18  # 16 channels: 16.4 s of audio at 16 kHz
    assert student.full_chunk(torch.empty(8, channels, 1)) == student.min_chunk_samples == 1 << 15


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_the_first_streamed_chunk_upsamples_one_block_of_a_long_utterance(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = vocoder.load(name, device="cpu")
    reads: list[tuple[int, int]] = []
    original = UpsampledConditioning.block

    def block(self: UpsampledConditioning, start: int, stop: int) -> torch.Tensor:
        reads.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(UpsampledConditioning, "block", block)
    long = tiled(model.features(EXAMPLES / "slt_0004_mel.npz"), 8000)  # the input limit: 100 s
    chunks = model.synthesize_stream(long, Sampling(seed=1), chunk_samples=1024)
    first = next(chunks)
    chunks.close()
    assert len(first) == 1024 and max(stop for _, stop in reads) <= max(BLOCK_SAMPLES, FIRST_CHUNK_SAMPLES)


def test_a_student_streams_bitwise_what_it_synthesizes_whole() -> None:
    model = vocoder.load("student", device="cpu")
    features = tiled(model.features(EXAMPLES / "slt_0004_mel.npz"), 400)  # 80,000 samples: six chunks
    whole = model.synthesize(features, seed=2)
    chunks = list(model.synthesize_stream(features, Sampling(seed=2), chunk_samples=1000))
    assert {len(chunk) for chunk in chunks[:-1]} == {1000}
    assert np.array_equal(np.concatenate(chunks), whole)


def test_loading_the_student_imports_no_symbolic_shapes() -> None:
    """The smoothers' phase selection made on the meta device (the load's shape check) imported torch.fx's symbolic
    shapes, sympy and triton: 0.15 GB more resident memory in every process that loads the student (#22)."""
    loaded = "import sys, vocoder; vocoder.load('student', device='cpu'); "
    probe = loaded + "print(sorted({'sympy', 'triton'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"
