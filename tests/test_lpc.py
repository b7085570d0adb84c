"""Linear-prediction excitation (issue #14 section 3): the predictor from the mel, the training targets, the
generators (the PyTorch loop, the fused CPU kernel in every precision and thread mode, the CUDA-graph step program:
each == naive, streamed == whole), and fine-tuning a model into it."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import signal

import vocoder
from tests.conftest import NAIVE_GROUP, NAIVE_STEPS, naive_reference, tiny_config, tone
from tests.test_cpu_kernel import TOLERANCES, RecordedSteps, assert_same_as_naive, torch_threads
from tests.test_train import TRAIN, build_cache
from vocoder.audio import mu_law_decode, mu_law_encode, mu_law_thresholds, preemphasize
from vocoder.bench.generation import GenerationBenchSettings, bench_generation, figure_count
from vocoder.bench.training import bench_training
from vocoder.config import ConfigError, load_config
from vocoder.features.acoustic import extract_features, log_mel
from vocoder.features.lpc import (
    excitation_targets,
    frame_lpc,
    levinson,
    mel_autocorrelation,
    predict,
    predict_signal,
    prediction_gain_db,
)
from vocoder.generate import FastWaveNet, KernelWaveNet, Sampling, cpu_kernel, fast_generator, generate_naive
from vocoder.generate.cuda_graph import CudaGraphWaveNet
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet, shift_right
from vocoder.native import load_extension
from vocoder.train.data import SegmentSampler, TrainingCorpus
from vocoder.train.trainer import Trainer
from vocoder.vocabulary import PRECISIONS

ORDER = 6


def lpc_config(**overrides: object):
    model = {"lpc_order": ORDER, **overrides.pop("model", {})}  # type: ignore[dict-item]
    return tiny_config(model=model, audio={"preemphasis": 0.85}, **overrides)


# --- configuration ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 33, -1])
def test_an_order_outside_0_or_2_to_32_is_refused(order: int) -> None:
    with pytest.raises(ConfigError, match="lpc_order"):
        tiny_config(model={"lpc_order": order})


def test_lpc_without_mel_conditioning_is_refused() -> None:
    with pytest.raises(ConfigError, match="lpc_order .* mel spectrogram's envelope"):
        tiny_config(model={"lpc_order": 8}, features={"conditioning": ["lf0", "vuv"]})


# --- the predictor ---------------------------------------------------------------------------------------------
def test_levinson_solves_the_yule_walker_equations_like_scipy() -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((3, 5, 400))
    shaped = signal.lfilter([1.0], [1.0, -1.2, 0.8], noise, axis=-1)
    r = np.stack([[np.correlate(x, x, "full")[399 : 399 + 17] for x in row] for row in shaped])
    predictor, reflections = levinson(torch.from_numpy(r))
    for index in np.ndindex(3, 5):
        expected = scipy.linalg.solve_toeplitz(r[index][:16], r[index][1:])
        np.testing.assert_allclose(predictor[index].numpy(), expected, rtol=1e-8, atol=1e-10)
    assert reflections.abs().max() < 1


def ar_signal(poles_hz: list[float], radius: float, seconds: float = 2.0) -> np.ndarray:
    """White noise through resonances at `poles_hz` (pole radius `radius`), scaled to peak 0.5."""
    poles = np.array([radius * np.exp(2j * np.pi * f / 16000) for f in poles_hz])
    polynomial = np.real(np.poly(np.concatenate([poles, poles.conj()])))
    wav = signal.lfilter([1.0], polynomial, np.random.default_rng(0).standard_normal(int(16000 * seconds)))
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


@pytest.mark.parametrize(
    ("poles_hz", "radius", "shortfall_db"),
    [([1000.0], 0.97, 1.0), ([300.0, 2200.0], 0.9, 1.0), ([500.0, 1500.0, 2500.0, 3500.0], 0.95, 7.5)],
    ids=["AR(2)", "AR(4)", "AR(8) sharp"],
)
@pytest.mark.parametrize("preemphasis", [0.0, 0.85])
def test_the_lpc_of_a_signals_mel_predicts_it(
    poles_hz: list[float], radius: float, shortfall_db: float, preemphasis: float
) -> None:
    """The predictor from the mel gains within `shortfall_db` of the best 16th-order predictor (Levinson on the
    signal's own autocorrelation) and at least 9 dB. Measured: 18.1 / 24.5 / 24.5 dB without pre-emphasis (best
    18.0 / 24.9 / 31.0: the 80 mel bands blur the sharpest resonances), 9.9 / 13.1 / 21.5 dB with 0.85 (best 9.8 /
    13.0 / 24.4), where the predictor is of the pre-emphasised signal, as a model reads it."""
    config = load_config("real_teacher_lpc")
    config = config.model_copy(update={"audio": config.audio.model_copy(update={"preemphasis": preemphasis})})
    wav = ar_signal(poles_hz, radius)
    mel = torch.from_numpy(log_mel(wav, 16000, config.features))[None]
    shaped = preemphasize(wav, preemphasis)
    padded = torch.from_numpy(np.pad(shaped, (0, mel.shape[1] * 200 - len(wav))))[None]
    gain = prediction_gain_db(shaped, predict_signal(frame_lpc(mel, config), padded, 200)[0, : len(wav)].numpy())
    r = torch.tensor([np.dot(shaped[: len(wav) - k].astype(np.float64), shaped[k:]) for k in range(17)])
    best = levinson(r)[0].float().expand(1, mel.shape[1], 16)
    best_gain = prediction_gain_db(shaped, predict_signal(best, padded, 200)[0, : len(wav)].numpy())
    assert gain > max(9.0, best_gain - shortfall_db)
    assert levinson(mel_autocorrelation(mel, config))[1].abs().max() < 1  # minimum phase


def test_silent_flat_and_random_frames_give_minimum_phase_filters() -> None:
    config = load_config("real_teacher_lpc")
    floor = float(np.log(config.features.log_floor))
    frames = torch.cat(
        [
            torch.full((1, 4, 80), floor),  # silence, at the log floor
            torch.zeros(1, 4, 80),  # flat
            torch.randn(1, 4, 80) * 4 - 3,  # anything
        ]
    )
    coefficients = frame_lpc(frames, config)
    assert torch.isfinite(coefficients).all()
    assert levinson(mel_autocorrelation(frames, config))[1].abs().max() < 1


def test_teacher_forced_prediction_is_the_step_formula_over_the_signals_past() -> None:
    torch.manual_seed(0)
    coefficients, wav, hop = torch.randn(2, 3, ORDER) * 0.3, torch.rand(2, 3 * 5) - 0.5, 5
    padded = torch.cat([torch.zeros(2, ORDER), wav], dim=1)
    stepwise = torch.stack(
        [predict(coefficients[:, t // hop], padded[:, t : t + ORDER].flip(-1)) for t in range(wav.shape[1])], dim=1
    )
    torch.testing.assert_close(predict_signal(coefficients, wav, hop), stepwise)
    targets, inputs, prediction = excitation_targets(wav, stepwise, 255)
    assert torch.equal(targets, mu_law_encode((wav - stepwise).clamp(-1, 1)))
    assert torch.equal(inputs, mu_law_encode(wav)) and torch.equal(prediction, mu_law_encode(stepwise))


@pytest.fixture(scope="module")
def lpc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("lpc-cache"), lpc_config(train=TRAIN))


@pytest.mark.parametrize("noise", [0.0, 2.0])
def test_training_batches_target_the_excitation_and_read_the_signal(lpc_cache: Path, noise: float) -> None:
    config = lpc_config(train={**TRAIN, "input_noise": noise})
    sampler = SegmentSampler.for_model(TrainingCorpus(lpc_cache, config, "train"), 31, augment=True)
    utterance = sampler.corpus.utterances[0]
    frames, audio, mask = sampler.segment(utterance, 2)
    batch = sampler._collate([(frames, audio, mask)], [0], torch.Generator().manual_seed(0))
    wav = torch.from_numpy(audio)[None]
    coefficients = frame_lpc(torch.from_numpy(frames)[None, sampler.margin : -sampler.margin], config)
    predicted = predict_signal(coefficients, wav, config.features.hop_length)
    assert torch.equal(batch.targets, mu_law_encode((wav - predicted).clamp(-1, 1)))
    assert torch.equal(batch.prediction, mu_law_encode(predicted))
    signal_ids = mu_law_encode(wav)
    assert torch.equal(batch.signal_ids, signal_ids)  # clean, noise or not: what distillation compares with
    if noise:  # noise goes into the past input, never into the targets or the prediction
        assert not torch.equal(batch.past, signal_ids) and (batch.past - signal_ids).abs().max() <= 12
    else:
        assert torch.equal(batch.past, signal_ids)
    # The tones are predictable: the excitation is much smaller than the signal.
    residual = (wav - predicted)[mask[None] > 0]
    assert residual.pow(2).mean() < 0.1 * wav[mask[None] > 0].pow(2).mean()


# --- generation ------------------------------------------------------------------------------------------------
MEAN_STEPS = 320
"""Samples per utterance of the kernel-vs-naive cases under `mean`, a length chosen for its frames (the others run
NAIVE_STEPS, now as many). Under `mean` the signal fed back is a float64 sum equal to the reference's only to
rounding, so a step whose prediction falls within that rounding of a mu-law threshold takes another prediction class,
and the generation departs from the reference there (measured: 1 of 20 random 600-sample rows of the kernel); the
frames of this length (seeded by it, `lpc_inputs`) have no such step (nor those of 400, 480 and 1,000 samples).
`sample` and `argmax` pick bitwise what the reference picks, on any frames."""


def lpc_model(seed: int = 0, **model: object) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(lpc_config(model=model)).eval()


def lpc_inputs(model: WaveNet, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(upsampled conditioning `[B, C, steps]`, predictor coefficients, speaker ids) from random log-mel frames."""
    frames = torch.randn(batch, -(-steps // 40), 10, generator=torch.Generator().manual_seed(steps)) - 2
    with torch.no_grad():
        return model.upsample(frames)[:, :, :steps], model.lpc(frames), torch.arange(batch) % 2


@NAIVE_GROUP
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_fast_equals_naive_for_an_lpc_model(kernel_size: int) -> None:
    model = lpc_model(kernel_size, kernel_size=kernel_size, input_kernel_size=kernel_size)
    local, lpc, speakers = lpc_inputs(model, 2, NAIVE_STEPS)
    sampling = Sampling(seed=3)
    uniforms = sampling.uniforms(2, NAIVE_STEPS)
    naive = naive_reference(model, local, speakers, sampling, uniforms, lpc)
    fast = FastWaveNet(model).generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    assert torch.equal(fast.ids, naive.ids) and torch.equal(fast.waveform, naive.waveform)
    assert (fast.logits - naive.logits).abs().max() < 1e-4
    assert len(torch.unique(fast.ids)) > 20
    # The waveform is the signal (prediction + excitation), not the drawn classes' centres; ids are its classes.
    assert not torch.equal(fast.waveform, mu_law_decode(fast.ids))
    assert torch.equal(fast.ids, mu_law_encode(fast.waveform))
    # The logits are the excitation's, as the teacher-forced forward computes them on the generated signal.
    prediction = mu_law_encode(predict_signal(lpc, fast.waveform, model.config.features.hop_length))
    with torch.no_grad():
        forward = model(shift_right(fast.ids, model.start_id), local, speakers, prediction).transpose(1, 2)
    assert (forward - fast.logits).abs().max() < 1e-3


def test_generators_refuse_missing_or_unexpected_coefficients() -> None:
    model, plain = lpc_model(), WaveNet(tiny_config()).eval()
    local, uniforms, sampling = torch.randn(1, 10, 80), torch.rand(1, 80, dtype=torch.float64), Sampling()
    with pytest.raises(ValueError, match="pass lpc=model.lpc"):
        FastWaveNet(model).generate(local, torch.tensor([0]), sampling, uniforms)
    with pytest.raises(ValueError, match="pass lpc=model.lpc"):
        generate_naive(model, local, torch.tensor([0]), sampling, uniforms)
    with pytest.raises(ValueError, match=r"lpc: expected \[1, >= 2, 6\]"):
        FastWaveNet(model).generate(local, torch.tensor([0]), sampling, uniforms, lpc=torch.zeros(1, 1, ORDER))
    with pytest.raises(ValueError, match="model without linear prediction"):
        FastWaveNet(plain).generate(local, torch.tensor([0]), sampling, uniforms, lpc=torch.zeros(1, 2, ORDER))


def test_the_kernels_prediction_is_bitwise_predicts() -> None:
    """The fused kernel rounds p_t as `predict` does (products, then halves added pairwise, no fused multiply-add),
    for orders that are and are not powers of two: one FMA, or a sum in another order, changes the last bit of
    many of these rows."""
    extension = load_extension(cpu_kernel.SOURCE)
    generator = torch.Generator().manual_seed(0)
    for order in (2, 6, 16, 23, 32):
        coefficients = torch.randn(20_000, order, generator=generator)
        history = torch.randn(20_000, order, generator=generator) * torch.logspace(-4, 0, order)
        assert torch.equal(extension.linear_prediction(coefficients, history), predict(coefficients, history))


def test_mu_law_thresholds_reproduce_the_encoding() -> None:
    """The compiled generators encode by counting thresholds; that must be `mu_law_encode` itself, log1p's rounding
    included (checked once over every float32 in [-1, 1]: no difference; here at every threshold, the float just
    below it, and random values)."""
    thresholds = mu_law_thresholds(255)
    assert thresholds.shape == (255,) and bool((thresholds[1:] > thresholds[:-1]).all())
    assert torch.equal(mu_law_encode(thresholds), torch.arange(1, 256))
    assert torch.equal(mu_law_encode(torch.nextafter(thresholds, torch.tensor(-2.0))), torch.arange(255))
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(200_000, generator=generator) * 2 - 1
    values = torch.cat([values, values * 1e-3, torch.tensor([-3.0, -1.0, -0.0, 0.0, 1.0, 3.0])])
    assert torch.equal(torch.searchsorted(thresholds, values, right=True), mu_law_encode(values))


@NAIVE_GROUP
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("strategy", ["sample", "argmax", "mean"])
def test_the_kernel_equals_naive_for_an_lpc_model(kernel_size: int, strategy: str) -> None:
    """Batch 2, two speakers: the same signal ids and samples as the naive reference, logits within 1e-4."""
    model = lpc_model(kernel_size, kernel_size=kernel_size, input_kernel_size=kernel_size)
    local, lpc, speakers = lpc_inputs(model, 2, MEAN_STEPS if strategy == "mean" else NAIVE_STEPS)
    reshaped = {"temperature": 0.8, "top_k": 50, "top_p": 0.95} if strategy != "sample" else {}
    assert_same_as_naive(model, local, speakers, Sampling(strategy, seed=3, **reshaped), lpc=lpc)


def test_lpc_batch_tiles_on_two_threads_equal_naive() -> None:
    """Batch 11 on two threads: tiles of 4 and 2 in one half of the batch, 4 and 1 in the other."""
    model = lpc_model(3, kernel_size=3, input_kernel_size=3)
    local, lpc, speakers = lpc_inputs(model, 11, 400)
    assert_same_as_naive(model, local, speakers, Sampling(seed=4), threads=2, lpc=lpc)


@NAIVE_GROUP
@pytest.mark.parametrize("split", [True, False])
def test_one_lpc_utterance_split_across_two_threads_equals_naive(split: bool) -> None:
    """Both threads of a split step predict from their own copy of the signal's history."""
    model = lpc_model(2, gate_channels=64, skip_channels=32)
    local, lpc, speakers = lpc_inputs(model, 1, NAIVE_STEPS)
    assert KernelWaveNet(model).groups == 2
    steps = assert_same_as_naive(model, local, speakers, Sampling(seed=8), threads=2, split=split, lpc=lpc)
    assert steps.splits and all(flag == split for flag in steps.splits)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_lpc_split_and_single_thread_are_bitwise_equal(precision: str) -> None:
    model = lpc_model(2, gate_channels=64)
    local, lpc, speakers = lpc_inputs(model, 1, 600)
    sampling = Sampling(seed=2)
    uniforms = sampling.uniforms(1, 600)
    kernels = [KernelWaveNet(model, precision, split) for split in (True, False)]
    recorded = [RecordedSteps(kernel) for kernel in kernels]
    with torch_threads(2):
        results = [kernel.generate(local, speakers, sampling, uniforms, True, lpc=lpc) for kernel in kernels]
    assert all(recorded[0].splits) and not any(recorded[1].splits)
    assert torch.equal(results[0].logits, results[1].logits) and torch.equal(results[0].ids, results[1].ids)


@pytest.mark.parametrize("generator", ["fp32", "fp16", "int8", "torch", "cuda-graph"])
def test_an_lpc_model_streams_exactly_what_it_generates_whole(generator: str) -> None:
    """The signal's history and the prediction classes of the input taps carry across kernel calls (100-sample
    blocks: partial conditioning tiles) and CUDA-graph replays as they do in the PyTorch loop."""
    model = lpc_model(2)
    local, lpc, speakers = lpc_inputs(model, 2, 520)
    if generator == "torch":
        fast: FastWaveNet | KernelWaveNet | CudaGraphWaveNet = FastWaveNet(model)
    elif generator == "cuda-graph":
        fast = CudaGraphWaveNet(model, capture=False)
    else:
        fast = KernelWaveNet(model, generator)
    sampling = Sampling(seed=6)
    uniforms = sampling.uniforms(2, 520)
    whole = fast.generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    streamed = fast.allocate(local, record_logits=True)
    blocks = list(fast.stream(local, speakers, sampling, uniforms, streamed, chunk_samples=100, lpc=lpc))
    assert blocks[0] == (0, 100) and blocks[-1] == (500, 520)
    assert torch.equal(streamed.ids, whole.ids) and torch.equal(streamed.waveform, whole.waveform)
    assert torch.equal(streamed.logits, whole.logits)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_keeps_an_lpc_models_logits_within_the_stated_tolerance(precision: str) -> None:
    """The teacher-forced forward of the generated signal (and its prediction classes) against the kernel's logits,
    with a trained model's logit range."""
    model = lpc_model(2)
    with torch.no_grad():
        model.head[3].weight.mul_(50)
        model.head[3].bias.mul_(50)
    local, lpc, speakers = lpc_inputs(model, 2, 400)
    sampling = Sampling(seed=1)
    result = KernelWaveNet(model, precision).generate(
        local, speakers, sampling, sampling.uniforms(2, 400), record_logits=True, lpc=lpc
    )
    prediction = mu_law_encode(predict_signal(lpc, result.waveform, model.config.features.hop_length))
    with torch.no_grad():
        forward = model(shift_right(result.ids, model.start_id), local, speakers, prediction).transpose(1, 2)
    assert (forward - result.logits).abs().max() < TOLERANCES[precision] * forward.abs().max()


def test_the_cuda_graph_step_program_equals_fast_for_an_lpc_model() -> None:
    """Run eagerly on CPU: the same ops the graph records (600 samples: 37 replays of 16 steps and a short one)."""
    model = lpc_model(3, kernel_size=3, input_kernel_size=3)
    local, lpc, speakers = lpc_inputs(model, 2, 600)
    sampling = Sampling(seed=7)
    uniforms = sampling.uniforms(2, 600)
    reference = FastWaveNet(model).generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    graph = CudaGraphWaveNet(model, capture=False, steps_per_graph=16)
    result = graph.generate(local, speakers, sampling, uniforms, record_logits=True, lpc=lpc)
    assert torch.equal(result.ids, reference.ids) and torch.equal(result.waveform, reference.waveform)
    assert (result.logits - reference.logits).abs().max() < 1e-5


def test_auto_runs_an_lpc_model_on_the_fused_kernel(caplog: pytest.LogCaptureFixture) -> None:
    model = lpc_model()
    with caplog.at_level(logging.WARNING):
        chosen = fast_generator(model)
    assert type(chosen) is KernelWaveNet
    assert "unavailable" not in caplog.text and "plain PyTorch Fast-WaveNet" not in caplog.text


@pytest.fixture
def lpc_model_file(tmp_path: Path) -> Path:
    config = lpc_config()
    return save_model(tmp_path / "lpc" / "model.safetensors", lpc_model(), config, "teacher", {"steps": 0})


def test_the_api_streams_an_lpc_model_exactly_as_whole_and_as_naive(lpc_model_file: Path) -> None:
    model = vocoder.load(lpc_model_file, device="cpu")
    assert type(model._fast) is KernelWaveNet
    features = extract_features(tone(0.05), lpc_config(), speaker="bob")  # 800 samples: chunks of 300, 300 and 200
    whole = model.synthesize(features, seed=4)
    chunks = list(model.synthesize_stream(features, Sampling(seed=4), chunk_samples=300))
    assert [len(chunk) for chunk in chunks] == [300, 300, 200] and np.array_equal(np.concatenate(chunks), whole)
    assert np.array_equal(model.synthesize(features, method="naive", seed=4), whole)
    assert np.array_equal(model.synthesize(features, method="fast-torch", seed=4), whole)
    assert np.abs(whole).max() > 0.01


def test_a_voicing_tied_sampling_streams_exactly_as_whole_and_as_naive(lpc_model_file: Path) -> None:
    """The bundled teacher's kind (LPC) with a voiced temperature: every generator takes each step's temperature
    from the frame's voicing, across stream chunks too."""
    model = vocoder.load(lpc_model_file, device="cpu")
    features = extract_features(tone(0.05), lpc_config(), speaker="bob")
    vuv = (np.arange(features.n_frames) % 3 != 0).astype(np.float32)  # voiced, voiced, unvoiced, ...
    features = replace(features, lf0=np.zeros_like(vuv), vuv=vuv)
    sampling = Sampling(temperature=1.3, voiced_temperature=0.5, seed=4)
    whole = model.synthesize_batch([features], sampling=sampling)[0]
    chunks = list(model.synthesize_stream(features, sampling, chunk_samples=300))
    assert np.array_equal(np.concatenate(chunks), whole)
    for method in ("naive", "fast-torch"):
        assert np.array_equal(model.synthesize_batch([features], method, sampling)[0], whole)
    plain = model.synthesize_batch([replace(features, vuv=None, lf0=None)], sampling=sampling)[0]
    assert not np.array_equal(plain, whole)


# --- training --------------------------------------------------------------------------------------------------
def test_init_from_a_model_without_lpc_starts_the_prediction_at_zero(
    lpc_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    plain_config = tiny_config(audio={"preemphasis": 0.85})
    plain = WaveNet(plain_config).eval()
    source = save_model(tmp_path / "plain" / "model.safetensors", plain, plain_config, "teacher", {"steps": 0})
    config = lpc_config(train={**TRAIN, "max_steps": 4, "valid_every": 4, "checkpoint_every": 4})
    with caplog.at_level(logging.INFO):
        trainer = Trainer(config, lpc_cache, tmp_path / "run", "cpu", init=source)
    assert "LPC prediction embedding starts at zero" in caplog.text
    assert not trainer.model.prediction_embedding.weight.any()
    inputs, local = torch.randint(0, 256, (1, 120)), torch.randn(1, 10, 120)
    with torch.no_grad():  # step 0 is the old network, whatever the prediction
        torch.testing.assert_close(
            trainer.model(inputs, local, torch.tensor([1]), torch.randint(0, 256, (1, 120))),
            plain(inputs, local, torch.tensor([1])),
        )
    summary = trainer.run()  # trains, validates, generates its sample (the PyTorch loop) and exports
    assert summary.step == 4 and (tmp_path / "run" / "samples" / "step_00000004.wav").is_file()
    exported = vocoder.load(tmp_path / "run" / "model", device="cpu")
    assert exported.config.model.lpc_order == ORDER and trainer.model.prediction_embedding.weight.any()


def test_the_training_benchmark_times_an_lpc_step_and_its_targets() -> None:
    report = bench_training(lpc_config(), "cpu", steps=1, repeats=1)
    assert report["train_samples_per_s"] > 0 and report["lpc_targets_ms_per_batch"] > 0
    assert "lpc_targets_ms_per_batch" not in bench_training(tiny_config(), "cpu", steps=1, repeats=1)


def test_the_generation_benchmark_times_an_lpc_model_beside_the_same_shape_without_it() -> None:
    settings = GenerationBenchSettings(naive_steps=4, fast_steps=80, batch_steps=20, batch_sizes=(2,), repeats=1)
    figures: list[str] = []
    report = bench_generation(lpc_config(), settings, lambda name, rates: figures.append(name))
    assert report["fast_generator"] == "KernelWaveNet"
    assert "fast_without_lpc" in figures and report["fast_without_lpc_samples_per_s"] > 0
    assert report["speed_with_lpc_vs_without"] == pytest.approx(  # the report rounds it to 3 decimals
        report["fast_samples_per_s"] / report["fast_without_lpc_samples_per_s"], rel=0.01, abs=5e-4
    )
    assert len(figures) == figure_count(lpc_config(), settings) == figure_count(tiny_config(), settings) + 1
    plain = bench_generation(tiny_config(), settings)
    assert "fast_without_lpc_samples_per_s" not in plain and "speed_with_lpc_vs_without" not in plain
