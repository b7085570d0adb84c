"""The fused CPU kernel must pick the same samples as the naive reference, and fall back cleanly where it cannot run.

The first test in a fresh checkout compiles the extension (about a minute on two cores); later runs load the cached
build (`vocoder.paths.kernel_cache_dir()`).
"""

import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import HEAVY, NAIVE_GROUP, NAIVE_STEPS, model_and_inputs, naive_reference, random_voicing
from vocoder import native
from vocoder.audio import mu_law_encode
from vocoder.bench.generation import plot_generation
from vocoder.features.lpc import predict_signal
from vocoder.generate import FastWaveNet, Sampling, StepTemperatures, cpu_kernel
from vocoder.generate.backends import fast_generator
from vocoder.generate.cpu_kernel import KernelWaveNet
from vocoder.models.wavenet import WaveNet, shift_right
from vocoder.native import load_extension
from vocoder.vocabulary import PRECISIONS

FP16_RELATIVE_TOLERANCE = 1e-3
"""Stated bound on max |logits(fp16 weights) - logits(float32 model)| on the same inputs, relative to max |logits|
(measured: about 2e-4 on the tiny and seed-size shapes, also with a trained-like logit range of +-18)."""
INT8_RELATIVE_TOLERANCE = 5e-2
"""The same bound for int8 weights and int8-quantised inputs of every product (measured: 5e-3 to 1.3e-2 on random
tiny and seed-size models, 1.1e-2 on the bundled teacher, 2.3e-2 to 3.2e-2 on the bundled tts-teacher)."""
TOLERANCES = {"fp16": FP16_RELATIVE_TOLERANCE, "int8": INT8_RELATIVE_TOLERANCE}


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the kernel on `count` torch threads (conftest pins one; the naive reference is slow on more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class RecordedSteps:
    """Stands in for a `KernelWaveNet`'s compiled step and records each block's split flag (its last argument), so
    a test can tell that a split actually ran rather than trusting the options it passed."""

    def __init__(self, kernel: KernelWaveNet) -> None:
        self.step, self.splits = kernel._step, []
        kernel._step = self

    def new_rings(self, batch: int) -> object:
        return self.step.new_rings(batch)

    def run(self, *args: object) -> None:
        self.splits.append(args[-1])
        self.step.run(*args)


def assert_same_as_naive(
    model: WaveNet,
    local: torch.Tensor,
    speaker_ids,
    sampling: Sampling,
    threads: int = 1,
    lpc: torch.Tensor | None = None,
    temperatures: StepTemperatures | None = None,
    **options,
) -> RecordedSteps:
    """`lpc`: an LPC model's predictor coefficients (tests/test_lpc.py); `temperatures`: a voicing-tied sampling's."""
    uniforms = sampling.uniforms(local.shape[0], local.shape[-1])
    naive = naive_reference(model, local, speaker_ids, sampling, uniforms, lpc, temperatures)
    generator = KernelWaveNet(model, **options)
    steps = RecordedSteps(generator)
    with torch_threads(threads):
        kernel = generator.generate(
            local, speaker_ids, sampling, uniforms, record_logits=True, lpc=lpc, temperatures=temperatures
        )
    assert torch.equal(kernel.ids, naive.ids)
    assert (kernel.logits - naive.logits).abs().max() < 1e-4
    if sampling.strategy != "mean":  # a mean is a float64 sum: equal to rounding, not bitwise
        assert torch.equal(kernel.waveform, naive.waveform)
    assert len(torch.unique(kernel.ids)) > 20 or sampling.strategy == "argmax"
    return steps


@NAIVE_GROUP
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("speakers", [["alice", "bob"], []], ids=["local+global", "local"])
def test_kernel_equals_naive(kernel_size: int, speakers: list[str]) -> None:
    model, local, speaker_ids = model_and_inputs(kernel_size, speakers)
    assert local.shape == (2, 10, NAIVE_STEPS)
    assert_same_as_naive(model, local, speaker_ids, Sampling(seed=11))


@NAIVE_GROUP
@pytest.mark.parametrize("strategy", ["sample", "argmax", "mean"])
def test_every_strategy_equals_naive(strategy: str) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"])
    assert_same_as_naive(model, local, speaker_ids, Sampling(strategy, temperature=0.8, top_k=50, top_p=0.95, seed=3))


@NAIVE_GROUP
@pytest.mark.parametrize("split", [True, False])
def test_voicing_tied_temperatures_equal_naive(split: bool) -> None:
    """Each step's own temperature, in batch tiles and in one utterance's step split across two threads."""
    batch = 1 if split else 3
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=batch, gate_channels=64, skip_channels=32)
    # (seed 5 draws one uniform within float32 rounding of a class boundary: kernel and reference differ there)
    sampling = Sampling(temperature=1.2, voiced_temperature=0.5, top_p=0.95, seed=6)
    temperatures = random_voicing(model, local, sampling)
    steps = assert_same_as_naive(model, local, speaker_ids, sampling, threads=2, split=split, temperatures=temperatures)
    assert steps.splits and all(flag == split for flag in steps.splits)


def test_batch_tiles_on_two_threads_equal_naive() -> None:
    """Batch 11 on two threads: tiles of 4 and 2 in one half of the batch, 4 and 1 in the other."""
    model, local, speaker_ids = model_and_inputs(3, ["alice", "bob"], batch=11, steps=400)
    assert_same_as_naive(model, local, speaker_ids, Sampling(seed=4), threads=2)


@NAIVE_GROUP
@pytest.mark.parametrize("split", [True, False])
def test_one_utterance_split_across_two_threads_equals_naive(split: bool) -> None:
    """A model with two gate groups (padded half gate a multiple of 32) splits one utterance's step."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=1, gate_channels=64, skip_channels=32)
    assert KernelWaveNet(model).groups == 2
    steps = assert_same_as_naive(model, local, speaker_ids, Sampling(seed=8), threads=2, split=split)
    assert steps.splits and all(flag == split for flag in steps.splits)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_split_and_single_thread_are_bitwise_equal(precision: str) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=1, steps=600, gate_channels=64)
    sampling = Sampling(seed=2)
    uniforms = sampling.uniforms(1, 600)
    kernels = [KernelWaveNet(model, precision, split) for split in (True, False, None)]
    assert all(kernel.groups == 2 for kernel in kernels)  # else no step could be split
    recorded = [RecordedSteps(kernel) for kernel in kernels]
    with torch_threads(2):
        results = [kernel.generate(local, speaker_ids, sampling, uniforms, record_logits=True) for kernel in kernels]
    assert all(torch.equal(result.logits, results[0].logits) for result in results)
    assert recorded[0].splits and all(recorded[0].splits)  # split: every block on two threads
    assert recorded[1].splits and not any(recorded[1].splits)  # one thread
    assert True in recorded[2].splits and False in recorded[2].splits  # the probe times both


def test_a_split_slower_than_one_thread_probes_again() -> None:
    """split=None keeps the split only while its blocks beat the single-thread probe (here: impossibly fast); a
    slower block starts a new probe (one thread, split warm-up, split) in the same stream."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=1, steps=2000, gate_channels=64)
    kernel = KernelWaveNet(model)
    kernel._split_choice = True, time.monotonic(), 1e-12
    sampling = Sampling(seed=2)
    result = kernel.allocate(local)
    with torch_threads(2):
        blocks = list(kernel.stream(local, speaker_ids, sampling, sampling.uniforms(1, 2000), result, 512))
    assert [stop - start for start, stop in blocks] == [512, 512, 256, 512, 208]
    assert kernel._split_choice is not None and kernel._split_choice[2] > 1e-12  # a new single-thread timing


def test_concurrent_calls_on_one_generator_are_bitwise_equal() -> None:
    """Two Python threads split on one generator at once: one gets its worker thread, the other makes its own."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], batch=1, steps=600, gate_channels=64)
    kernel = KernelWaveNet(model, split=True)
    assert kernel.groups == 2
    steps = RecordedSteps(kernel)
    sampling = Sampling(seed=2)
    uniforms = sampling.uniforms(1, 600)
    with torch_threads(2), ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: kernel.generate(local, speaker_ids, sampling, uniforms).ids, range(4)))
        single = KernelWaveNet(model, split=False).generate(local, speaker_ids, sampling, uniforms).ids
    assert all(torch.equal(ids, single) for ids in results)
    assert len(steps.splits) == 4 and all(steps.splits)  # every call split its step


WORKER_LIFECYCLE = """
import gc, os, torch
from tests.conftest import model_and_inputs
from vocoder.generate import Sampling
from vocoder.generate.cpu_kernel import KernelWaveNet

def threads():
    return len(os.listdir("/proc/self/task"))

torch.set_num_threads(2)
model, local, speakers = model_and_inputs(2, ["alice", "bob"], batch=1, steps=300, gate_channels=64)
sampling = Sampling(seed=1)
uniforms = sampling.uniforms(1, local.shape[-1])  # 280 steps: 7 frames of 40
expected = KernelWaveNet(model, split=True).generate(local, speakers, sampling, uniforms).ids
before = threads()
kernels = [KernelWaveNet(model, split=True) for _ in range(3)]
for kernel in kernels:
    assert torch.equal(kernel.generate(local, speakers, sampling, uniforms).ids, expected)
    kernel.generate(local.expand(3, -1, -1), speakers.expand(3), sampling, uniforms.expand(3, -1))  # batch parts
assert threads() == before + 3, (before, threads())  # one worker each, made once
del kernel, kernels
gc.collect()
assert threads() == before, (before, threads())  # joined
kernel = KernelWaveNet(model, split=True)
kernel.generate(local, speakers, sampling, uniforms)
child = os.fork()
if child == 0:  # a forked child has no worker thread: it must make its own, not wait for the parent's
    ok = torch.equal(kernel.generate(local, speakers, sampling, uniforms).ids, expected)
    os._exit(0 if ok else 1)
_, status = os.waitpid(child, 0)
assert status == 0, status
print("done", flush=True)  # then exit with a parked worker still alive
"""


EXIT_BOUND_S = 60
"""Exiting takes milliseconds; a parked worker that held exit up would take until its wait ended, if ever. The bound
is generous so a busy machine cannot fail the test, and a hang still fails it with a clear message."""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_worker_threads_are_made_once_joined_on_drop_and_do_not_delay_exit() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER_LIFECYCLE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert child.stdout is not None
        last = child.stdout.readline()  # blocks until the script's last line, or its end if it failed
        assert last == "done\n", child.communicate(timeout=120)[1]
        try:
            child.wait(timeout=EXIT_BOUND_S)  # after its last line, the child only has to exit
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {EXIT_BOUND_S} s of the last line: a parked worker thread delays exit")
        assert child.returncode == 0, child.communicate()[1]
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


@pytest.mark.parametrize("generator", ["fp32", "fp16", "int8", "torch"])
def test_streamed_blocks_equal_one_generation(generator: str) -> None:
    """State carries across kernel calls; 100-sample blocks exercise a partial conditioning tile. The reduced
    precisions and the plain PyTorch loop (`torch`) must stream exactly what they generate whole, too."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=520)
    kernel = FastWaveNet(model) if generator == "torch" else KernelWaveNet(model, generator)
    sampling = Sampling(seed=6)
    uniforms = sampling.uniforms(2, 520)
    whole = kernel.generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    streamed = kernel.allocate(local, record_logits=True)
    blocks = list(kernel.stream(local, speaker_ids, sampling, uniforms, streamed, chunk_samples=100))
    assert blocks[0] == (0, 100) and blocks[-1] == (500, 520)
    assert torch.equal(streamed.ids, whole.ids) and torch.equal(streamed.logits, whole.logits)


def test_gate_approximation_error_is_below_1e6() -> None:
    """The kernel's tanh(f) * sigmoid(g) (from a polynomial exp) against float64, over the float range that matters."""
    generator = torch.Generator().manual_seed(0)
    f = torch.cat([torch.linspace(-30, 30, 200_001), torch.randn(100_000, generator=generator) * 4])
    g = torch.cat([torch.randn(200_001, generator=generator) * 4, torch.linspace(-30, 30, 100_000)])
    approximate = load_extension(cpu_kernel.SOURCE).gate_activation(f, g).double()
    exact = torch.tanh(f.double()) * torch.sigmoid(g.double())
    assert (approximate - exact).abs().max() < 1e-6


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("config", ["tiny", "tiny-wide-logits", "seed_size"])
def test_reduced_precision_keeps_logits_within_the_stated_tolerance(config: str, precision: str) -> None:
    """fp16 and int8 weights change the samples, so compare the logits with the float32 model's on the same inputs."""
    if config.startswith("tiny"):
        model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=400)
        if config == "tiny-wide-logits":  # a trained model's logits span tens, a random one's less than one
            with torch.no_grad():
                model.head[3].weight.mul_(50)
                model.head[3].bias.mul_(50)
    else:
        from vocoder.config import load_config

        torch.manual_seed(0)
        model = WaveNet(load_config("seed_size")).eval()
        local, speaker_ids = torch.randn(1, model.local_channels, 400), torch.tensor([1])
    sampling = Sampling(seed=1)
    result = KernelWaveNet(model, precision).generate(
        local, speaker_ids, sampling, sampling.uniforms(local.shape[0], 400), record_logits=True
    )
    with torch.no_grad():
        forward = model(shift_right(result.ids, model.start_id), local, speaker_ids).transpose(1, 2)
    assert (forward - result.logits).abs().max() < TOLERANCES[precision] * forward.abs().max()


@pytest.mark.parametrize(("name", "example"), [("teacher", "kal_0165_mel"), ("tts-teacher", "slt_0004_tts")])
def test_int8_keeps_a_trained_models_logits_within_the_stated_tolerance(name: str, example: str) -> None:
    """Trained weights and real features (logits up to about 90) on the bundled models (the teacher predicts an LPC
    excitation: the forward reads the generated signal's prediction classes too)."""
    import vocoder

    synthesizer = vocoder.load(name, device="cpu")
    features = synthesizer.features(Path(__file__).parents[1] / "examples" / f"{example}.npz")
    frames = synthesizer.frames([features])
    with torch.no_grad():
        local = synthesizer.local_conditioning([features]).block(0, 2000).contiguous()
    speaker_ids, model, sampling = synthesizer.speaker_ids([features]), synthesizer.model, Sampling(seed=1)
    lpc = model.lpc(frames)
    result = KernelWaveNet(model, "int8").generate(
        local, speaker_ids, sampling, sampling.uniforms(1, local.shape[-1]), record_logits=True, lpc=lpc
    )
    hop = model.config.features.hop_length
    prediction = None if lpc is None else mu_law_encode(predict_signal(lpc, result.waveform, hop))
    with torch.no_grad():
        forward = model(shift_right(result.ids, model.start_id), local, speaker_ids, prediction).transpose(1, 2)
    assert (forward - result.logits).abs().max() < INT8_RELATIVE_TOLERANCE * forward.abs().max()


def test_int8_batch_tiles_keep_logits_within_the_stated_tolerance() -> None:
    """Batch 11 on two threads (tiles of 4, 2 and 1) streamed in 60-sample blocks (partial conditioning tiles)."""
    model, local, speaker_ids = model_and_inputs(3, ["alice", "bob"], batch=11, steps=200)
    kernel = KernelWaveNet(model, "int8")
    sampling = Sampling(seed=5)
    result = kernel.allocate(local, record_logits=True)
    with torch_threads(2):
        for _ in kernel.stream(local, speaker_ids, sampling, sampling.uniforms(11, 200), result, chunk_samples=60):
            pass
    with torch.no_grad():
        forward = model(shift_right(result.ids, model.start_id), local, speaker_ids).transpose(1, 2)
    error = (forward - result.logits).abs().amax((1, 2))
    assert (error < INT8_RELATIVE_TOLERANCE * forward.abs().amax((1, 2))).all()


def test_int8_without_vnni_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A build for a CPU without AVX-512 VNNI still runs int8 weights (portably, slowly), and says so."""
    model, _, _ = model_and_inputs(2, ["alice", "bob"], steps=80)
    extension = load_extension(cpu_kernel.SOURCE)
    monkeypatch.setattr(
        cpu_kernel, "load_extension", lambda source: SimpleNamespace(**{**vars(extension), "int8_vnni": False})
    )
    with caplog.at_level(logging.WARNING):
        KernelWaveNet(model, "int8")
    assert "no AVX-512 VNNI" in caplog.text


def test_fast_generator_falls_back_when_the_build_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, _ = model_and_inputs(2, ["alice", "bob"], steps=80)
    monkeypatch.setattr(native, "_build", lambda source: (None, "CalledProcessError: no compiler"))
    with caplog.at_level(logging.WARNING):
        generator = fast_generator(model)
    assert isinstance(generator, FastWaveNet)
    assert "fused CPU kernel unavailable" in caplog.text and "no compiler" in caplog.text


def test_fast_generator_falls_back_for_an_unsupported_model(caplog: pytest.LogCaptureFixture) -> None:
    model, _, _ = model_and_inputs(2, ["alice", "bob"], steps=80)
    with caplog.at_level(logging.WARNING):
        generator = fast_generator(model.double())
    assert isinstance(generator, FastWaveNet)
    assert "torch.float64" in caplog.text


def test_kernel_hands_cuda_tensors_to_the_plain_generator(caplog: pytest.LogCaptureFixture) -> None:
    """No GPU here: a meta-device input stands in for any non-CPU tensor (the kernel must not touch it)."""
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=80)
    kernel = KernelWaveNet(model)
    calls = []

    def plain_stream(*args: object, **kwargs: object) -> Iterator[tuple[int, int]]:
        calls.append(args)
        yield 0, 80

    kernel.fallback.stream = plain_stream  # type: ignore[method-assign]
    meta = local.to("meta")
    with caplog.at_level(logging.WARNING):
        blocks = list(kernel.stream(meta, speaker_ids, Sampling(), torch.rand(2, 80), kernel.allocate(local)))
    assert blocks == [(0, 80)] and calls and calls[0][0].device == meta.device
    assert "using the plain PyTorch Fast-WaveNet" in caplog.text


@pytest.mark.slow
def test_a_missing_compiler_falls_back_in_a_fresh_process(tmp_path: Path) -> None:
    """The real failure path: an empty build folder and a compiler that does not exist."""
    script = (
        "import torch; from tests.conftest import tiny_config; from vocoder.models.wavenet import WaveNet;"
        "from vocoder.generate.backends import fast_generator;"
        "print(type(fast_generator(WaveNet(tiny_config()))).__name__)"
    )
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "VOCODER_KERNEL_BUILD": str(tmp_path / "build")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "FastWaveNet"
    assert "fused CPU kernel unavailable" in result.stderr


PORTABLE_CHECKS = "naive or bitwise or stated_tolerance or streamed_blocks or gate_approximation"
"""The kernel's equality and tolerance tests, rerun on the portable build."""


@pytest.mark.slow
@HEAVY
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="an x86-64 -march level")
def test_a_build_for_older_cpus_passes_the_kernel_checks() -> None:
    """Built with -march=x86-64-v2 (no AVX2, F16C or AVX-512: the portable vector code, fp16 conversion and int8
    product a user on an older CPU gets), the kernel must pass the same equality and tolerance tests. Shown to catch
    a break of the portable int8 product: dot4 summing 3 of its 4 products (`r < 3`) fails the int8 tolerance
    tests here, while the native (VNNI) build passes them."""
    env = {**os.environ, "VOCODER_KERNEL_MARCH": "x86-64-v2"}
    root = Path(__file__).parents[1]
    probe = "from vocoder.native import load_extension; from vocoder.generate import cpu_kernel as k; "
    probe += "print(load_extension(k.SOURCE).int8_vnni)"
    built = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=root, timeout=900
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.strip().splitlines()[-1] == "False"  # the portable int8 product, not VNNI
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", PORTABLE_CHECKS],
        capture_output=True, text=True, env=env, cwd=root, timeout=900,
    )  # fmt: skip
    assert checks.returncode == 0, checks.stdout[-4000:]
    assert " passed" in checks.stdout and " skipped" not in checks.stdout


def test_benchmark_plot_is_written(tmp_path: Path) -> None:
    report: dict[str, object] = {"fast_generator": "KernelWaveNet", "config": "tiny", "device": "cpu", "threads": 2}
    for key, value in {"naive": 50.0, "fast": 9000.0, "fast_batch8": 30000.0, "fast_torch": 400.0}.items():
        rates = {"": value, "_min": value / 2, "_max": value}
        report |= {f"{key}_samples_per_s{suffix}": rate for suffix, rate in rates.items()}
    plot_generation(report, tmp_path / "speed.png")
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"
