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
from tests.test_lpc import lpc_model
from tests.test_student_kernel import inputs, random_student
from vocoder.bench.memory_probe import tiled
from vocoder.errors import VocoderError
from vocoder.features.lpc import frame_lpc
from vocoder.generate import CudaGraphWaveNet, FastWaveNet, KernelStudent, KernelWaveNet, Sampling, TorchStudent
from vocoder.generate.cpu_kernel import BLOCK_SAMPLES
from vocoder.generate.sampling import SeededUniforms, Uniforms, as_uniforms
from vocoder.generate.student_kernel import CHUNK_CONDITIONING_BYTES, FIRST_CHUNK_SAMPLES
from vocoder.models import conditioning as conditioning_module
from vocoder.models.conditioning import (
    Conditioning,
    FramePredictors,
    Predictors,
    TensorPredictors,
    UpsampledConditioning,
)
from vocoder.models.layers import ConditioningUpsampler
from vocoder.models.wavenet import WaveNet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ABSOLUTE_ERROR = 1e-5
"""Stated bound on |polyphase - Conv2d| of the shipped models' upsampled conditioning (measured at most 6.7e-6, the
student's tiles; 3.8e-6 its one pass)."""
RELATIVE_ERROR = 1e-6
"""...and relative to the largest |value| (measured at most 7.2e-7): float32 rounding, the stages composed first."""


TILE_FRAMES = 16
"""Frames per tile in these tests (`small_tiles`): blocks and first chunks span several."""


@pytest.fixture
def small_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles of 64,000 bytes a row: TILE_FRAMES frames of the test upsamplers here (5 channels at hop 200), 40 of the
    tiny teacher (10 channels at hop 40), 80 of the tiny student, and predictor coefficients in tiles of 31 frames
    (n_fft 256): every utterance below spans several."""
    monkeypatch.setattr(conditioning_module, "TILE_BYTES", TILE_FRAMES * 5 * 200 * 4)


def conv2d_upsample(upsampler: ConditioningUpsampler, frames: torch.Tensor) -> torch.Tensor:
    """The upsampler as it was before #22: edges repeated, prenet (zero-padded), each stage a stretch then a Conv2d
    smoother."""
    edge, prenet = upsampler.edge_frames, upsampler.prenet
    padding = prenet.kernel_size[0] // 2
    x = F.conv1d(F.pad(frames, (edge, edge), mode="replicate"), prenet.weight, prenet.bias, padding=padding)
    x = x.unsqueeze(1)
    for scale, smoother in zip(upsampler.scales, upsampler.smoothers, strict=True):
        x = F.conv2d(x.repeat_interleave(scale, dim=-1), smoother.weight, padding=(0, scale))
    crop = edge * upsampler.hop
    return x.squeeze(1)[..., crop:-crop]


@pytest.mark.parametrize("name", ["teacher", "tts-teacher", "student"])
@torch.inference_mode()
def test_the_shipped_upsamplers_compute_what_the_conv2d_form_did(name: str) -> None:
    """The one pass (training, the ONNX export) and the tiles generation reads (the teacher's examples span several)."""
    model = vocoder.load(name, device="cpu")
    upsampler = model.model.upsampler
    for path in sorted(EXAMPLES.glob("*.npz")):
        try:
            features = model.features(path)
        except VocoderError:  # the other kind of features
            continue
        frames = torch.from_numpy(features.conditioning(model.config))[None].transpose(1, 2)
        expected = conv2d_upsample(upsampler, frames)
        for got in (upsampler(frames), upsampler.conditioning(frames).whole()):
            assert got.shape == expected.shape
            error = (got - expected).abs().max().item()
            assert error < ABSOLUTE_ERROR and error < RELATIVE_ERROR * expected.abs().max().item()


@pytest.mark.parametrize(("scales", "prenet"), [([4, 5, 10], 3), ([4, 4, 5], 5), ([2, 3], 1), ([7], 3)])
@torch.inference_mode()
def test_blocks_anywhere_are_bitwise_slices_of_the_whole(scales: list[int], prenet: int, small_tiles: None) -> None:
    torch.manual_seed(0)
    upsampler = ConditioningUpsampler(6, 5, scales, prenet)
    for smoother in upsampler.smoothers:
        torch.nn.init.normal_(smoother.weight)  # not the symmetric moving average: every tap matters
    hop = math.prod(scales)
    frames = torch.randn(2, 6, 2 * TILE_FRAMES * 200 // hop + 13)  # three tiles, the last one partly past the end
    one_pass = upsampler(frames)
    assert torch.allclose(one_pass, conv2d_upsample(upsampler, frames), atol=1e-5)
    conditioning = upsampler.conditioning(frames)
    whole = conditioning.whole()
    assert frames.shape[-1] > 2 * conditioning.tile_frames
    steps = conditioning.shape[-1]
    assert whole.shape == one_pass.shape == (2, 5, steps) == (2, 5, frames.shape[-1] * hop)
    assert torch.allclose(whole, one_pass, atol=1e-5)
    cuts = sorted({0, steps, *torch.randint(1, steps, (12,)).tolist()})
    blocks = [conditioning.block(start, stop) for start, stop in itertools.pairwise(cuts)]
    assert torch.equal(torch.cat(blocks, -1), whole)
    backwards = upsampler.conditioning(frames)  # another order of tiles, overlapping blocks
    for start, stop in reversed(list(itertools.pairwise(cuts))):
        assert torch.equal(backwards.block(max(0, start - 7), stop), whole[..., max(0, start - 7) : stop])
    assert torch.equal(conditioning.block(steps - 1, steps), whole[..., -1:])


@torch.inference_mode()
def test_a_tile_reads_exactly_its_frames_and_the_context_it_needs(small_tiles: None) -> None:
    """The prenet runs per tile too: frames past a tile's context cannot reach it (a NaN there leaves it finite),
    and the last frame of its context does (a NaN there reaches it)."""
    torch.manual_seed(0)
    upsampler = ConditioningUpsampler(6, 5, [4, 5, 10], 3)
    tile_samples = TILE_FRAMES * upsampler.hop
    assert upsampler.conditioning(torch.randn(1, 6, 1)).tile_samples == tile_samples
    beyond = TILE_FRAMES + upsampler.edge_frames  # the first frame that tile 0 does not read
    for first_nan, finite in ((beyond, True), (beyond - 1, False)):
        frames = torch.randn(1, 6, 4 * TILE_FRAMES)
        frames[..., first_nan:] = float("nan")
        assert bool(upsampler.conditioning(frames).block(0, tile_samples).isfinite().all()) is finite
    frames = torch.randn(1, 6, 4 * TILE_FRAMES)
    frames[..., : 2 * TILE_FRAMES - upsampler.edge_frames] = float("nan")  # before tile 2's context
    assert upsampler.conditioning(frames).block(2 * tile_samples, 3 * tile_samples).isfinite().all()


def test_uniform_draws_of_any_block_are_slices_of_the_whole() -> None:
    """Counter-based draws (#22): each block is drawn from its own first step, so blocks in any order and overlapping
    (a student's chunks) are the whole draw's, and a row's draws depend on the seed and the row only."""
    draws = Sampling(seed=7).draws(3, 5000)
    whole = draws.whole()
    assert whole.shape == (3, 5000) and whole.dtype == torch.float64
    assert whole.min().item() >= 0 and whole.max().item() < 1 and abs(whole.mean().item() - 0.5) < 0.01
    for start, stop in ((0, 1), (1, 2), (3, 4099), (4998, 5000), (2001, 2001), (17, 4983), (0, 5000)):
        assert torch.equal(draws.block(start, stop), whole[:, start:stop])
    wider = Sampling(seed=7).draws(5, 7000).whole()
    assert torch.equal(wider[:3, :5000], whole)  # neither the batch size nor the length changes a row's draws
    assert not torch.equal(whole[0], whole[1]) and not torch.equal(Sampling(seed=8).uniforms(3, 5000), whole)
    with pytest.raises(ValueError, match=r"steps \[4990, 5010\) are outside \[0, 5000\)"):
        draws.block(4990, 5010)


def test_the_definition_of_the_draws_is_pinned() -> None:
    """The seeded draws are Philox4x64-10 (see `SeededUniforms`); a change here changes every seeded output."""
    assert Sampling(seed=0).uniforms(2, 3).tolist() == [
        [0.011546754286331562, 0.24154919656271812, 0.11142585551493822],
        [0.8133540609793564, 0.7513314251083365, 0.6716490436969984],
    ]
    assert Sampling(seed=-1).uniforms(1, 2).tolist() == [[0.23494158814525556, 0.7173107484541781]]
    assert Sampling(seed=2**64 - 1).uniforms(1, 2).tolist() == [[0.23494158814525556, 0.7173107484541781]]


class Recorded(Conditioning):
    """A conditioning that remembers which blocks were read."""

    def __init__(self, inner: Conditioning) -> None:
        self.inner, self.reads = inner, []
        self.shape, self.device, self.dtype = inner.shape, inner.device, inner.dtype

    def block(self, start: int, stop: int) -> torch.Tensor:
        self.reads.append((start, stop))
        return self.inner.block(start, stop)


class RecordedUniforms(Uniforms):
    """Uniform draws that remember which blocks were drawn."""

    def __init__(self, inner: Uniforms) -> None:
        self.inner, self.reads, self.shape = inner, [], inner.shape

    def block(self, start: int, stop: int) -> torch.Tensor:
        self.reads.append((start, stop))
        return self.inner.block(start, stop)


def tiny_teacher() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(tiny_config(speakers=["alice", "bob"])).eval()


TORCH_BLOCK = 512
"""The longest block the PyTorch generators read when streaming chunks of 500 samples (the CUDA-graph loop rounds a
chunk up to its 16-step graphs); the kernel's are BLOCK_SAMPLES."""


def crosses_a_tile(reads: list[tuple[int, int]], tile_samples: int) -> bool:
    """Whether some block read `[start, stop)` spans two tiles of `tile_samples`."""
    return any(start // tile_samples != (stop - 1) // tile_samples for start, stop in reads)


@pytest.mark.parametrize("generator", ["kernel", "fast-torch", "cuda-graph-eager"])
@torch.inference_mode()
def test_teacher_generators_upsample_each_block_when_they_reach_it(generator: str, small_tiles: None) -> None:
    """Several blocks, some across tiles of 1,600 samples: 5,200 samples (three kernel blocks) for the kernel, 2,000
    (four blocks of 500 or 512) for the PyTorch loops, whose every step costs Python time."""
    model = tiny_teacher()
    make = {"kernel": KernelWaveNet, "fast-torch": FastWaveNet, "cuda-graph-eager": CudaGraphWaveNet}[generator]
    fast = make(model) if generator != "cuda-graph-eager" else CudaGraphWaveNet(model, capture=False)
    block = BLOCK_SAMPLES if generator == "kernel" else TORCH_BLOCK
    frames = torch.randn(2, 130 if generator == "kernel" else 50, model.config.features.dim)
    lazy = Recorded(model.conditioning(frames))
    assert lazy.shape[-1] > 2 * block and lazy.shape[-1] > lazy.inner.tile_samples
    speakers, sampling = torch.tensor([0, 1]), Sampling(seed=1)
    uniforms = RecordedUniforms(sampling.draws(2, lazy.shape[-1]))
    result = fast.allocate(lazy, record_logits=True)
    stream = fast.stream(lazy, speakers, sampling, uniforms, result, chunk_samples=500)
    assert next(stream) == (0, 500)
    assert max(stop for _, stop in lazy.reads) <= 512  # nothing past the first chunk (in 16-step graphs) yet
    assert uniforms.reads == lazy.reads  # each block's draws drawn with its conditioning
    for _ in stream:
        pass
    assert max(stop - start for start, stop in lazy.reads) <= block
    assert crosses_a_tile(lazy.reads, lazy.inner.tile_samples)
    assert uniforms.reads == lazy.reads
    whole = fast.generate(lazy.inner.whole(), speakers, sampling, uniforms.inner.whole(), record_logits=True)
    assert torch.equal(result.ids, whole.ids) and torch.equal(result.logits, whole.logits)


@torch.inference_mode()
def test_predictor_blocks_anywhere_are_bitwise_slices_of_the_whole(small_tiles: None) -> None:
    """An LPC model's coefficients are computed a tile of frames at a time (#22): any block of samples reads its
    frames' rows of `whole()` bitwise, in any order, and a tile reads exactly its own frames."""
    model = lpc_model()
    hop = model.config.features.hop_length
    tile = 64_000 // (model.config.features.n_fft * 8)  # frames a tile (`small_tiles`): 31
    frames = torch.randn(2, 3 * tile + 5, model.config.features.dim) - 2  # four tiles, the last one partial
    predictors = model.predictors(frames)
    assert isinstance(predictors, FramePredictors) and predictors.tile_frames == tile
    whole = predictors.whole()
    assert whole.shape == (2, frames.shape[1], model.lpc_order) and whole.dtype == torch.float32
    assert torch.allclose(whole, frame_lpc(frames, model.config), rtol=0, atol=1e-6)  # the one pass, within rounding
    short = model.predictors(frames[:, :5])  # fewer frames than a tile: one tile of just those
    assert short.tile_frames == 5 and torch.allclose(short.whole(), whole[:, :5], rtol=0, atol=1e-6)
    steps = frames.shape[1] * hop
    cuts = sorted({0, steps, *torch.randint(1, steps, (12,), generator=torch.Generator().manual_seed(0)).tolist()})
    for start, stop in itertools.pairwise(cuts):
        assert torch.equal(predictors.block(start, stop), whole[:, start // hop : -(-stop // hop)])
    backwards = model.predictors(frames)  # another order of tiles, overlapping blocks
    for start, stop in reversed(list(itertools.pairwise(cuts))):
        first = max(0, start - 7 * hop)
        assert torch.equal(backwards.block(first, stop), whole[:, first // hop : -(-stop // hop)])
    for first_nan, finite in ((tile, True), (tile - 1, False)):
        poisoned = frames.clone()
        poisoned[:, first_nan:] = math.nan
        assert bool(model.predictors(poisoned).block(0, tile * hop).isfinite().all()) is finite


class RecordedPredictors(Predictors):
    """Predictor coefficients that remember which frames were read."""

    def __init__(self, inner: Predictors) -> None:
        self.inner, self.reads, self.shape, self.hop = inner, [], inner.shape, inner.hop

    def frames(self, first: int, last: int) -> torch.Tensor:
        self.reads.append((first, last))
        return self.inner.frames(first, last)


@pytest.mark.parametrize("generator", ["fp32", "int8", "fast-torch", "cuda-graph-eager"])
@torch.inference_mode()
def test_lpc_generators_compute_each_blocks_predictors_when_they_reach_it(generator: str, small_tiles: None) -> None:
    """An LPC teacher's generators read the coefficients of each block's frames with its conditioning, none before
    the first chunk past it, and stream bitwise what they generate from whole tensors. Blocks cross predictor tiles
    of 1,240 samples: 6,000 samples (three kernel blocks) for the kernels, 1,800 for the PyTorch loops."""
    model = lpc_model(2, gate_channels=64)
    if generator == "fast-torch":
        fast: KernelWaveNet | FastWaveNet | CudaGraphWaveNet = FastWaveNet(model)
    elif generator == "cuda-graph-eager":
        fast = CudaGraphWaveNet(model, capture=False)
    else:
        fast = KernelWaveNet(model, generator, split=False)
    hop = model.config.features.hop_length
    count = 150 if isinstance(fast, KernelWaveNet) else 45
    frames = torch.randn(2, count, model.config.features.dim, generator=torch.Generator().manual_seed(1)) - 2
    lazy = Recorded(model.conditioning(frames))
    predictors = RecordedPredictors(model.predictors(frames))
    block = BLOCK_SAMPLES if isinstance(fast, KernelWaveNet) else TORCH_BLOCK
    assert lazy.shape[-1] > 2 * block and frames.shape[1] > predictors.inner.tile_frames
    speakers, sampling = torch.tensor([0, 1]), Sampling(seed=5)
    uniforms = sampling.draws(2, lazy.shape[-1])
    result = fast.allocate(lazy, record_logits=True)
    stream = fast.stream(lazy, speakers, sampling, uniforms, result, chunk_samples=500, lpc=predictors)
    assert next(stream) == (0, 500)
    assert max(last for _, last in predictors.reads) <= -(-512 // hop)  # no frame past the first chunk's yet
    for _ in stream:
        pass
    assert predictors.reads == [(start // hop, -(-stop // hop)) for start, stop in lazy.reads]
    assert max(stop - start for start, stop in lazy.reads) <= block
    assert crosses_a_tile(lazy.reads, predictors.inner.tile_frames * hop)
    whole = fast.generate(
        lazy.inner.whole(), speakers, sampling, uniforms.whole(), record_logits=True, lpc=predictors.inner.whole()
    )
    assert torch.equal(result.ids, whole.ids) and torch.equal(result.waveform, whole.waveform)
    assert torch.equal(result.logits, whole.logits)
    other_hop = TensorPredictors(predictors.inner.whole(), 2 * hop)  # another model's frames
    with pytest.raises(ValueError, match="coefficients of frames of 40 samples, found .* of frames of 80"):
        fast.generate(lazy, speakers, sampling, uniforms, lpc=other_hop)


def first_chunk(generator: str, frames: torch.Tensor, poisoned: bool) -> torch.Tensor:
    """The first streamed chunk of `frames [1, n, C]` (500 samples from a teacher, 2,048 from a student); `poisoned`:
    every frame past the first tile's context NaN."""
    model = random_student() if generator.startswith("student") else tiny_teacher()
    conditioning = model.conditioning(frames)
    assert frames.shape[1] >= 4 * conditioning.tile_frames  # an utterance of several tiles
    if poisoned:
        frames = frames.clone()
        frames[:, conditioning.tile_frames + model.upsampler.edge_frames :] = math.nan
        conditioning = model.conditioning(frames)
    sampling, speakers = Sampling(seed=3), torch.tensor([1])
    uniforms = sampling.draws(1, conditioning.shape[-1])
    if generator.startswith("student"):
        student = KernelStudent(model) if generator == "student-kernel" else TorchStudent(model)
        return next(student.stream(conditioning, speakers, uniforms))[1]
    fast = {"kernel": KernelWaveNet, "fast-torch": FastWaveNet}.get(generator)
    fast = fast(model) if fast is not None else CudaGraphWaveNet(model, capture=False)
    result = fast.allocate(conditioning)
    start, stop = next(fast.stream(conditioning, speakers, sampling, uniforms, result, chunk_samples=500))
    return result.waveform[:, start:stop]


@pytest.mark.parametrize("generator", ["kernel", "fast-torch", "cuda-graph-eager", "student-kernel", "student-torch"])
@torch.inference_mode()
def test_the_first_streamed_chunk_reads_no_frame_past_the_first_tile(generator: str, small_tiles: None) -> None:
    """Nothing before the first chunk runs over the whole utterance, the prenet included: with every frame past the
    first tile's context NaN, the first chunk is finite and the clean utterance's."""
    frames = torch.randn(1, 400, tiny_config().features.dim, generator=torch.Generator().manual_seed(4))
    clean, got = first_chunk(generator, frames, False), first_chunk(generator, frames, True)
    assert got.isfinite().all() and torch.equal(got, clean)


@pytest.mark.parametrize("forward", ["kernel", "torch"])
@torch.inference_mode()
def test_student_chunks_are_the_whole_pass(forward: str, small_tiles: None) -> None:
    """Bitwise for the fused forward; PyTorch's convolutions round differently by length (measured 4.5e-8)."""
    model = random_student()
    student = KernelStudent(model) if forward == "kernel" else TorchStudent(model)
    student.min_chunk_samples, student.chunk_bytes = 3 * model.receptive_field, 0  # many chunks: 2,048, 3,120...
    frames, speakers, uniforms = inputs(model, 2, 500)  # 20,000 samples
    lazy = Recorded(model.conditioning(frames))
    assert frames.shape[1] > 4 * lazy.inner.tile_frames  # chunks cross tiles
    whole = student.one_pass(lazy.inner.whole(), speakers, uniforms)
    draws = RecordedUniforms(as_uniforms(uniforms))
    stream = student.stream(lazy, speakers, draws)
    start, first = next(stream)
    assert start == 0 and first.shape == (2, FIRST_CHUNK_SAMPLES) and lazy.reads == [(0, FIRST_CHUNK_SAMPLES)]
    chunks = torch.cat([first, *(chunk for _, chunk in stream)], 1)
    reads = [stop - start for start, stop in lazy.reads]
    assert max(reads) == student.min_chunk_samples + model.receptive_field - 1 and draws.reads == lazy.reads
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
    channels = model.model.local_channels + model.model.source_channels  # the flows' conditioning, source included
    for batch in (1, 2, 8):
        local = torch.empty(batch, channels, 1)
        full = student.full_chunk(local)
        assert full == max(student.min_chunk_samples, CHUNK_CONDITIONING_BYTES // (4 * batch * channels))
    assert channels == 23 and student.full_chunk(torch.empty(1, channels, 1)) == 182_361  # 11.4 s at 16 kHz
    assert student.full_chunk(torch.empty(1, 16, 1)) == 1 << 18  # 16 channels (no source): 16.4 s
    assert student.full_chunk(torch.empty(8, channels, 1)) == student.min_chunk_samples == 1 << 15


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_the_first_streamed_chunk_upsamples_and_draws_one_block_of_a_long_utterance(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = vocoder.load(name, device="cpu")
    calls: dict[str, list[tuple[int, ...]]] = {"block": [], "draw": [], "tile": [], "predictor tile": []}

    def record(owner: type, method: str, name: str) -> None:
        original = getattr(owner, method)

        def recorded(self: object, *arguments: int) -> torch.Tensor:
            calls[name].append(arguments)
            return original(self, *arguments)

        monkeypatch.setattr(owner, method, recorded)

    record(UpsampledConditioning, "block", "block")
    record(UpsampledConditioning, "tile", "tile")
    record(SeededUniforms, "block", "draw")
    record(FramePredictors, "tile", "predictor tile")
    long = tiled(model.features(EXAMPLES / "slt_0004_mel.npz"), 8000)  # the input limit: 100 s
    chunks = model.synthesize_stream(long, Sampling(seed=1), chunk_samples=1024)
    first = next(chunks)
    chunks.close()
    assert len(first) == 1024 and set(calls["tile"]) == {(0,)}  # the prenet too ran over the first tile's frames
    assert calls["predictor tile"] == ([(0,)] if name == "teacher" else [])  # the LPC teacher's first 64 frames
    for name in ("block", "draw"):
        assert max(stop for _, stop in calls[name]) <= max(BLOCK_SAMPLES, FIRST_CHUNK_SAMPLES)


def test_a_student_streams_bitwise_what_it_synthesizes_whole() -> None:
    model = vocoder.load("student", device="cpu")
    features = tiled(model.features(EXAMPLES / "slt_0004_mel.npz"), 400)  # 80,000 samples: six chunks
    whole = model.synthesize(features, seed=2)
    chunks = list(model.synthesize_stream(features, model.sampling(seed=2), chunk_samples=1000))
    assert {len(chunk) for chunk in chunks[:-1]} == {1000}
    assert np.array_equal(np.concatenate(chunks), whole)


def test_loading_the_student_imports_no_symbolic_shapes() -> None:
    """The smoothers' phase selection made on the meta device (the load's shape check) imported torch.fx's symbolic
    shapes, sympy and triton: 0.15 GB more resident memory in every process that loads the student (#22)."""
    loaded = "import sys, vocoder; vocoder.load('student', device='cpu'); "
    probe = loaded + "print(sorted({'sympy', 'triton'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"
