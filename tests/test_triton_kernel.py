"""The persistent Triton kernel (generate/triton_kernel.py) must pick the naive reference's samples, carry its state
across launches, and hand over to CUDA graphs where it cannot run.

Without a GPU the kernel runs under Triton's interpreter on the CPU: tests/conftest.py sets `TRITON_INTERPRET=1` in
every process that runs tests where CUDA is absent, before anything imports triton. With a GPU the same tests
compile the kernel and compare it on CUDA with the naive reference on CUDA (TF32 off). Interpreted, a step of the
tiny models costs about 10 ms, and a bitonic sort (top-k, top-p) about 40 ms at 32 classes: hence 80 samples, and
16 classes where the sampling settings are exercised.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import vocoder
from tests.conftest import model_and_inputs, naive_reference, random_voicing, tiny_config
from vocoder.audio import mu_law_decode
from vocoder.bench.generation import GenerationBenchSettings, bench_generation, figure_count
from vocoder.generate import (
    CudaGraphWaveNet,
    FastWaveNet,
    GenerationResult,
    Sampling,
    backends,
    fast_generator,
    triton_kernel,
)
from vocoder.generate.triton_kernel import TritonWaveNet
from vocoder.models.wavenet import WaveNet, shift_right
from vocoder.native import KernelUnavailable

triton = pytest.importorskip("triton", reason="triton is not installed (it ships with torch's Linux wheels)")
INTERPRETED = bool(triton.knobs.runtime.interpret)
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="no CUDA device and TRITON_INTERPRET is off: nothing can run the Triton kernel",
)
SLOW = pytest.mark.slow
"""Interpreted, each sampling setting's sorts and each model cost seconds of CPU: the fast set keeps one test of each
kind (the kernel, sampling, LPC, fallbacks); `make test` runs them all."""
STEPS = 80
"""Samples per utterance where frames matter (LPC coefficients, streaming): two frames of the tiny models, five
times their receptive field; elsewhere one frame (every ring, at most 9 samples, still wraps several times)."""


@pytest.fixture(autouse=True)
def exact_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 products in the naive reference on CUDA (TF32 moves its logits by ~1e-3: tests/test_cuda_graph.py)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def on_device(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if tensor is None else tensor.to(DEVICE) for tensor in tensors]


def small_model(kernel_size: int = 2, mu: int = 15, speakers: tuple[str, ...] = ("alice", "bob")) -> WaveNet:
    """A tiny teacher with `mu + 1` classes (16 keeps the interpreter's sorts short; 31 pads to 32)."""
    torch.manual_seed(kernel_size + mu)
    config = tiny_config(
        audio={"mu": mu}, model={"kernel_size": kernel_size, "input_kernel_size": kernel_size}, speakers=list(speakers)
    )
    return WaveNet(config).eval()


def inputs(model: WaveNet, batch: int = 2, steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor | None]:
    with torch.no_grad():
        local = model.upsample(torch.randn(batch, steps // 40, 10, generator=torch.Generator().manual_seed(steps)))
    return local, (torch.arange(batch) % 2 if model.config.speakers else None)


def lpc_model(kernel_size: int = 2) -> WaveNet:
    """A tiny teacher with linear prediction of order 6 (tests/test_lpc.py's shape, without importing its
    dependencies: the GPU machine runs this module with few packages)."""
    torch.manual_seed(kernel_size)
    model = {"lpc_order": 6, "kernel_size": kernel_size, "input_kernel_size": kernel_size}
    return WaveNet(tiny_config(model=model, audio={"preemphasis": 0.85})).eval()


def lpc_inputs(model: WaveNet, steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(upsampled conditioning, predictor coefficients, speaker ids) of two utterances' random log-mel frames."""
    frames = torch.randn(2, -(-steps // 40), 10, generator=torch.Generator().manual_seed(steps)) - 2
    with torch.no_grad():
        return model.upsample(frames)[:, :, :steps], model.lpc(frames), torch.arange(2) % 2


def assert_same_as_naive(
    model: WaveNet,
    local: torch.Tensor,
    speakers: torch.Tensor | None,
    sampling: Sampling,
    lpc: torch.Tensor | None = None,
    distinct: int = 8,
) -> GenerationResult:
    """The fp32 generators' criterion (tests/test_cpu_kernel.py): the same ids and waveform (a `mean` to rounding),
    logits within 1e-4; and enough distinct samples that equality means something."""
    model = model.to(DEVICE)
    local, speakers, lpc = on_device(local, speakers, lpc)
    uniforms = sampling.uniforms(local.shape[0], local.shape[-1])
    naive = naive_reference(model, local, speakers, sampling, uniforms, lpc)
    result = TritonWaveNet(model).generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    assert torch.equal(result.ids, naive.ids)
    assert (result.logits - naive.logits).abs().max() < 1e-4
    if sampling.strategy == "mean":  # a float64 sum: equal to rounding
        assert (result.waveform - naive.waveform).abs().max() < 1e-6
    else:
        assert torch.equal(result.waveform, naive.waveform)
    samples = result.waveform if sampling.strategy == "mean" else result.ids  # a mean's class varies little
    assert len(torch.unique(samples)) >= distinct or sampling.strategy == "argmax"
    return result


@pytest.mark.parametrize(
    ("kernel_size", "speakers"),
    [
        pytest.param(3, ["alice", "bob"], id="local+global-3"),
        pytest.param(2, ["alice", "bob"], id="local+global-2", marks=SLOW),
        pytest.param(3, [], id="local-3", marks=SLOW),
        pytest.param(2, [], id="local-2", marks=SLOW),
    ],
)
def test_kernel_equals_naive(kernel_size: int, speakers: list[str]) -> None:
    """256 classes, 12 gate channels (6 per half, padded to 8), kernel 3 (taps padded to 4)."""
    model, local, speaker_ids = model_and_inputs(kernel_size, speakers, steps=40)  # 2.5 receptive fields
    assert_same_as_naive(model, local, speaker_ids, Sampling(seed=11), distinct=20)


@pytest.mark.parametrize(
    ("strategy", "settings"),
    [
        ("sample", {"temperature": 0.7}),
        pytest.param("sample", {"top_k": 5}, marks=SLOW),
        pytest.param("sample", {"top_p": 0.8}, marks=SLOW),
        pytest.param("sample", {"temperature": 1.3, "top_k": 6, "top_p": 0.9}, marks=SLOW),
        pytest.param("argmax", {"temperature": 0.8, "top_k": 5, "top_p": 0.9}, marks=SLOW),
        pytest.param("mean", {"temperature": 0.8, "top_k": 5, "top_p": 0.9}, marks=SLOW),
    ],
)
def test_every_strategy_and_reshaping_equals_naive(strategy: str, settings: dict[str, float]) -> None:
    model = small_model()
    local, speakers = inputs(model, steps=40)  # one frame: 2.5 receptive fields, and the sorts are slow interpreted
    assert_same_as_naive(model, local, speakers, Sampling(strategy, seed=3, **settings), distinct=4)  # type: ignore[arg-type]


@SLOW
def test_classes_padded_to_a_power_of_two_are_never_drawn() -> None:
    """31 classes in 32 lanes: the padded lane's logit is -inf for every strategy's arithmetic."""
    model = small_model(mu=30, speakers=())
    local, _ = inputs(model, steps=40)
    result = assert_same_as_naive(model, local, None, Sampling(temperature=1.5, top_p=0.99, seed=5), distinct=10)
    assert int(result.ids.max()) <= 30


@pytest.mark.parametrize("kernel_size", [3, pytest.param(2, marks=SLOW)])
def test_an_lpc_model_equals_naive(kernel_size: int) -> None:
    """The prediction (order 6, padded to 8 terms, rounded as lpc.predict rounds it), its class, the signal kept."""
    model = lpc_model(kernel_size)
    local, lpc, speakers = lpc_inputs(model)
    result = assert_same_as_naive(model, local, speakers, Sampling(seed=3), lpc=lpc, distinct=20)
    assert not torch.equal(result.waveform.cpu(), mu_law_decode(result.ids.cpu()))  # the signal, not bin centres


@SLOW
@pytest.mark.parametrize("logits", ["random", "wide"])
def test_fp16_weights_keep_logits_within_the_stated_tolerance(logits: str) -> None:
    """fp16 matrices change the samples, so the logits are compared with the float32 model's forward on the ids
    generated; "wide": a trained model's logit range (tens; a random model's span less than one)."""
    model, local, speakers = model_and_inputs(2, ["alice", "bob"], steps=40)
    if logits == "wide":
        with torch.no_grad():
            model.head[3].weight.mul_(50)
            model.head[3].bias.mul_(50)
    model, local, speakers = model.to(DEVICE), *on_device(local, speakers)
    sampling = Sampling(seed=1)
    generator = TritonWaveNet(model, precision="fp16")
    assert generator._tensors[2].dtype == torch.float16 and generator._tensors[0].dtype == torch.float32
    result = generator.generate(local, speakers, sampling, sampling.uniforms(2, 40), record_logits=True)
    with torch.no_grad():
        forward = model(shift_right(result.ids, model.start_id), local, speakers).transpose(1, 2)
    error = (forward - result.logits).abs().max() / forward.abs().max()
    assert 1e-6 < error < triton_kernel.FP16_TOLERANCE  # changed by fp16, within the bound
    with pytest.raises(KernelUnavailable, match="precision int8: the Triton kernel's weights are fp32 or fp16"):
        TritonWaveNet(model, precision="int8")


@SLOW
def test_rows_of_a_batch_are_independent() -> None:
    model, local, speakers = model_and_inputs(2, ["alice", "bob"], batch=3, steps=40)
    model, local, speakers = model.to(DEVICE), *on_device(local, speakers)
    sampling = Sampling(seed=8)
    uniforms = sampling.uniforms(3, 40)
    generator = TritonWaveNet(model)
    batch = generator.generate(local, speakers, sampling, uniforms)
    for row in range(3):
        alone = generator.generate(local[row : row + 1], speakers[row : row + 1], sampling, uniforms[row : row + 1])
        assert torch.equal(alone.ids[0], batch.ids[row]) and torch.equal(alone.waveform[0], batch.waveform[row])


@SLOW
def test_streamed_launches_carry_the_state_and_equal_one_generation() -> None:
    """Launches of 7 samples (not a divisor of the frame or of any ring): the rings, the previous id and the LPC
    history live in device tensors between them."""
    model = lpc_model(3).to(DEVICE)
    local, lpc, speakers = on_device(*lpc_inputs(model))
    sampling = Sampling(temperature=0.9, seed=6)
    uniforms = sampling.uniforms(2, STEPS)
    generator = TritonWaveNet(model)
    whole = generator.generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    streamed = generator.allocate(local, record_logits=True)
    blocks = list(generator.stream(local, speakers, sampling, uniforms, streamed, chunk_samples=7, lpc=lpc))
    assert blocks[0] == (0, 7) and blocks[-1] == (77, STEPS)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert torch.equal(streamed.ids, whole.ids) and torch.equal(streamed.waveform, whole.waveform)
    # each block's conditioning is one matrix product whose rounding depends on its rows (FastWaveNet's too)
    assert (streamed.logits - whole.logits).abs().max() < 1e-6
    reference = FastWaveNet(model).generate(local, speakers, sampling, uniforms, lpc=lpc)
    assert torch.equal(whole.ids, reference.ids)


@SLOW
def test_equal_probabilities_across_the_top_p_cut_keep_the_lowest_ids() -> None:
    """The documented tie rule, at the reference's cut: of 16 equally likely classes, top_p 0.25 keeps 4 (the mass
    before the fifth, 4/16, reaches it exactly, so it is dropped), the lowest ids, and a draw u picks floor(4u)."""
    model = small_model(speakers=())
    with torch.no_grad():
        model.head[3].weight.zero_()
        model.head[3].bias.fill_(0.25)
    model = model.to(DEVICE)
    local, _ = inputs(model, batch=1, steps=40)
    sampling = Sampling(top_p=0.25, seed=2)
    assert int((sampling.shaped_probabilities(torch.full((1, 16), 0.25)) > 0).sum()) == 4  # the reference keeps 4
    uniforms = sampling.uniforms(1, 40)
    result = TritonWaveNet(model).generate(local.to(DEVICE), None, sampling, uniforms)
    assert torch.equal(result.ids.cpu(), (uniforms * 4).floor().long())


def tiny_on_device(steps: int = 40) -> tuple[WaveNet, torch.Tensor, torch.Tensor, Sampling, torch.Tensor]:
    model, local, speakers = model_and_inputs(2, ["alice", "bob"], steps=steps)
    local, speakers = on_device(local, speakers)
    sampling = Sampling(seed=4)
    return model.to(DEVICE), local, speakers, sampling, sampling.uniforms(2, steps)  # type: ignore[return-value]


class Launches:
    """Stands in for the kernel and records each launch's grid."""

    def __init__(self, kernel: object) -> None:
        self.kernel, self.grids = kernel, []

    def __getitem__(self, grid: tuple[int]) -> object:
        self.grids.append(grid)
        return self.kernel[grid]  # type: ignore[index]


def test_larger_batches_go_to_cuda_graphs() -> None:
    """`graphs_above` (what `auto` uses): a batch above it never launches the kernel, one within it does."""
    model, local, speakers, sampling, uniforms = tiny_on_device()
    generator = TritonWaveNet(model, graphs_above=1)
    generator._kernel = launches = Launches(generator._kernel)
    result = generator.generate(local, speakers, sampling, uniforms)
    assert launches.grids == []
    assert torch.equal(result.ids, FastWaveNet(model).generate(local, speakers, sampling, uniforms).ids)
    alone = generator.generate(local[:1], speakers[:1], sampling, uniforms[:1])
    assert launches.grids == [(1,)] and torch.equal(alone.ids[0], result.ids[0])


def test_voicing_tied_temperatures_go_to_cuda_graphs() -> None:
    """The kernel takes one temperature: per-step ones are the CUDA graphs' (which equal FastWaveNet's)."""
    model, local, speakers, _, _ = tiny_on_device()
    sampling = Sampling(temperature=1.2, voiced_temperature=0.5, seed=3)
    uniforms = sampling.uniforms(local.shape[0], local.shape[-1])
    temperatures = random_voicing(model, local, sampling)
    generator = TritonWaveNet(model)
    generator._kernel = launches = Launches(generator._kernel)
    result = generator.generate(local, speakers, sampling, uniforms, temperatures=temperatures)
    assert launches.grids == []
    expected = FastWaveNet(model).generate(local, speakers, sampling, uniforms, temperatures=temperatures)
    assert torch.equal(result.ids, expected.ids)


class Refused:
    """Stands in for a compiled kernel that the driver or compiler refuses."""

    def __getitem__(self, grid: tuple[int]) -> object:
        def launch(*args: object, **options: object) -> None:
            raise RuntimeError("ptxas fatal: unsupported")

        return launch


def test_a_compiled_kernel_that_fails_hands_the_stream_to_cuda_graphs(caplog: pytest.LogCaptureFixture) -> None:
    model, local, speakers, sampling, uniforms = tiny_on_device()
    generator = TritonWaveNet(model)
    generator._kernel, generator.interpreted = Refused(), False
    with caplog.at_level(logging.WARNING):
        result = generator.generate(local, speakers, sampling, uniforms)
    assert "Triton kernel failed (ptxas fatal: unsupported); using CUDA graphs" in caplog.text
    assert torch.equal(result.ids, FastWaveNet(model).generate(local, speakers, sampling, uniforms).ids)
    generator.interpreted = True  # the interpreter is a test tool: its errors surface
    with pytest.raises(RuntimeError, match="ptxas fatal"):
        generator.generate(local, speakers, sampling, uniforms)


def test_models_and_machines_the_kernel_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    model, _, _ = model_and_inputs(2, [], steps=40)
    with pytest.raises(KernelUnavailable, match="the model is torch.float64, the kernel is float32"):
        TritonWaveNet(WaveNet(model.config).double())
    monkeypatch.setattr(triton_kernel, "_load_kernel", lambda: (None, False))  # compiled, as without the interpreter
    with pytest.raises(KernelUnavailable, match="the model is on cpu: Triton compiles for CUDA"):
        TritonWaveNet(model)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "triton", None)
    with pytest.raises(KernelUnavailable, match="triton cannot be imported"):
        TritonWaveNet(model)
    monkeypatch.undo()
    # a triton without the library functions the kernel uses: the kernel's module fails at import, re-run here
    monkeypatch.delattr(triton.language.standard, "_sum_combine")
    monkeypatch.delitem(sys.modules, "vocoder.generate.triton_step", raising=False)
    monkeypatch.delattr(vocoder.generate, "triton_step", raising=False)
    with pytest.raises(KernelUnavailable, match="triton cannot be imported .*_sum_combine"):
        TritonWaveNet(model)


def test_the_fallback_is_cuda_graphs_and_fast_torch_stays_the_plain_loop(tiny_model_file: Path) -> None:
    model, _, _ = model_and_inputs(2, [], steps=40)
    assert isinstance(TritonWaveNet(model).fallback, CudaGraphWaveNet)
    loaded = vocoder.load(tiny_model_file, device=DEVICE, backend="triton")
    assert type(loaded._fast) is TritonWaveNet and type(loaded._fast_torch) is FastWaveNet


@pytest.mark.slow
def test_the_generation_benchmark_times_the_kernel_beside_fast_on_cuda_only() -> None:
    """On CUDA (on a CPU: asked for, interpreted) a `triton` figure beside `fast` at batch 1 and each batch size;
    without it the figures are as before."""
    settings = GenerationBenchSettings(
        naive_steps=2, fast_steps=8, batch_steps=2, batch_sizes=(2,), repeats=1, device=DEVICE, triton=True
    )
    figures: list[str] = []
    report = bench_generation(tiny_config(), settings, lambda name, rates: figures.append(name))
    assert {"triton", "triton_batch2"} <= set(figures) and len(figures) == figure_count(tiny_config(), settings)
    assert report["triton_samples_per_s"] > 0 and "speedup_triton_vs_fast" in report  # 0.0 interpreted
    plain = replace(settings, triton=False)
    assert not [key for key in bench_generation(tiny_config(), plain) if "triton" in key]
    assert figure_count(tiny_config(), plain) + 2 == len(figures)
    assert GenerationBenchSettings(device="cuda").times_triton and not GenerationBenchSettings().times_triton


@pytest.mark.skipif(INTERPRETED, reason="the backends of a CUDA model (compiled kernel)")
def test_the_backends_of_a_cuda_model() -> None:
    model = model_and_inputs(2, [], steps=40)[0].cuda()
    assert type(fast_generator(model, "triton")) is TritonWaveNet
    auto = TritonWaveNet if backends.TRITON_AUTO_MAX_BATCH else CudaGraphWaveNet
    assert type(fast_generator(model)) is auto


class Launched(Exception):
    """The captured launch: nothing after it runs."""


class Captured:
    """Stands in for the kernel: records one launch's arguments and options, and launches nothing."""

    def __getitem__(self, grid: tuple[int]) -> object:
        def launch(*args: object, **options: object) -> None:
            self.args, self.options = args, options
            raise Launched

        return launch


def compile_for_hopper(model: WaveNet, sampling: Sampling, record: bool, precision: str = "fp32") -> str:
    """Compile the launch `TritonWaveNet` makes for `model` and `sampling` to sm_90 machine code with triton's own
    ptxas, no GPU needed (a process that does not interpret triton); its resource usage, as cuobjdump reports it."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from vocoder.generate.triton_step import wavenet_chunk

    triton_kernel._load_kernel = lambda: (wavenet_chunk, True)  # built on a CPU model; the launch is captured
    generator = TritonWaveNet(model, precision=precision)  # type: ignore[arg-type]
    generator._kernel = captured = Captured()
    if model.lpc_order:
        local, lpc, speakers = lpc_inputs(model)
    else:
        (local, speakers), lpc = inputs(model), None
    with pytest.raises(Launched):
        generator.generate(local, speakers, sampling, sampling.uniforms(2, STEPS), record_logits=record, lpc=lpc)
    kinds = {torch.float16: "*fp16", torch.float32: "*fp32", torch.float64: "*fp64", torch.int64: "*i64"}
    signature = {
        name: kinds[value.dtype] if isinstance(value, torch.Tensor) else ("fp32" if isinstance(value, float) else "i32")
        for name, value in zip(wavenet_chunk.arg_names, captured.args, strict=False)
    }
    options = {name: captured.options.pop(name) for name in ("num_warps", "num_stages", "enable_fp_fusion")}
    signature.update({name: "constexpr" for name in captured.options})
    source = ASTSource(fn=wavenet_chunk, signature=signature, constexprs=captured.options)
    cubin = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["cubin"]
    path = Path(tempfile.mkdtemp()) / "kernel.cubin"
    path.write_bytes(cubin)
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    usage = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True, check=True)
    return next(line.strip() for line in usage.stdout.splitlines() if "REG:" in line)


def compile_variants() -> None:
    """Print the resource usage of the kernel's variants that the tests above run: every constexpr branch."""
    for model, sampling, record, precision in [
        (model_and_inputs(3, ["alice", "bob"], steps=STEPS)[0], Sampling(seed=1), False, "fp32"),
        (small_model(), Sampling("mean", temperature=0.8, top_k=5, top_p=0.9), True, "fp16"),
        (small_model(mu=30, speakers=()), Sampling("argmax"), False, "fp32"),
        (lpc_model(2), Sampling(temperature=0.8, top_k=5, top_p=0.9), True, "fp32"),
    ]:
        print(compile_for_hopper(model, sampling, record, precision))


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists(),
    reason="this triton carries no ptxas",
)
def test_the_kernel_compiles_for_hopper_without_a_gpu() -> None:
    """The interpreter runs the kernel's arithmetic, not its compilation: Triton's code generator refuses what NumPy
    accepts (a global that is not a constexpr, a loop-carried value whose type changes). Compiled to sm_90 machine
    code in a process that does not interpret triton (the interpreter decides when triton is imported)."""
    environment = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", "from tests.test_triton_kernel import compile_variants; compile_variants()"],
        capture_output=True, text=True, env=environment, cwd=Path(__file__).parents[1], timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len([line for line in done.stdout.splitlines() if line.startswith("REG:")]) == 4, done.stdout
