"""The fast generator must equal the naive reference and the teacher-forced forward pass."""

import pytest
import torch

from tests.conftest import tiny_config
from vocoder.audio import mu_law_bin_centres
from vocoder.generate import FastWaveNet, Sampling, SamplingError, generate_naive
from vocoder.models.wavenet import WaveNet, shift_right

STEPS = 1200


def model_and_inputs(kernel_size: int, speakers: list[str], batch: int = 2, steps: int = STEPS):
    torch.manual_seed(kernel_size)
    config = tiny_config(model={"kernel_size": kernel_size, "input_kernel_size": kernel_size}, speakers=speakers)
    model = WaveNet(config).eval()
    with torch.no_grad():
        local = model.upsample(torch.randn(batch, steps // 40, 10))
    speaker_ids = torch.arange(batch) % 2 if speakers else None
    return model, local, speaker_ids


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("speakers", [["alice", "bob"], []], ids=["local+global", "local"])
def test_fast_equals_naive(kernel_size: int, speakers: list[str]) -> None:
    model, local, speaker_ids = model_and_inputs(kernel_size, speakers)
    sampling = Sampling(seed=11)
    uniforms = sampling.uniforms(local.shape[0], local.shape[-1])
    naive = generate_naive(model, local, speaker_ids, sampling, uniforms, record_logits=True)
    fast = FastWaveNet(model).generate(local, speaker_ids, sampling, uniforms, record_logits=True)
    assert local.shape == (2, 10, STEPS)
    assert torch.equal(fast.ids, naive.ids)
    assert torch.equal(fast.waveform, naive.waveform)
    assert (fast.logits - naive.logits).abs().max() < 1e-4
    assert len(torch.unique(fast.ids)) > 20  # a real sampled signal, not a constant


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_fast_logits_equal_the_teacher_forced_forward(kernel_size: int) -> None:
    model, local, speaker_ids = model_and_inputs(kernel_size, ["alice", "bob"], batch=3, steps=800)
    sampling = Sampling(seed=5)
    fast = FastWaveNet(model).generate(local, speaker_ids, sampling, sampling.uniforms(3, 800), record_logits=True)
    with torch.no_grad():
        forward = model(shift_right(fast.ids, model.start_id), local, speaker_ids).transpose(1, 2)
    assert (forward - fast.logits).abs().max() < 1e-4


@pytest.mark.parametrize("strategy", ["sample", "argmax", "mean"])
def test_every_strategy_is_reproducible_and_consistent(strategy: str) -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=400)
    fast = FastWaveNet(model)
    sampling = Sampling(strategy=strategy, temperature=0.8, top_k=50, top_p=0.95, seed=3)
    first = fast.generate(local, speaker_ids, sampling, sampling.uniforms(2, 400))
    second = fast.generate(local, speaker_ids, sampling, sampling.uniforms(2, 400))
    naive = generate_naive(model, local, speaker_ids, sampling, sampling.uniforms(2, 400))
    assert torch.equal(first.waveform, second.waveform)
    assert torch.equal(first.ids, naive.ids)
    assert first.waveform.dtype == torch.float32 and first.waveform.abs().max() <= 1


def test_different_seeds_give_different_samples() -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=200)
    fast = FastWaveNet(model)
    a = fast.generate(local, speaker_ids, Sampling(seed=1), Sampling(seed=1).uniforms(2, 200))
    b = fast.generate(local, speaker_ids, Sampling(seed=2), Sampling(seed=2).uniforms(2, 200))
    assert not torch.equal(a.ids, b.ids)


LOGITS = torch.log(torch.tensor([[0.05, 0.4, 0.1, 0.3, 0.15]]))


def test_argmax_takes_the_mode() -> None:
    ids, values = Sampling("argmax").choose(LOGITS, torch.tensor([0.99]), mu=4)
    assert ids.tolist() == [1]
    assert values.item() == pytest.approx(mu_law_bin_centres(4)[1].item())


def test_mean_is_the_expected_waveform_value() -> None:
    _, values = Sampling("mean").choose(LOGITS, torch.tensor([0.5]), mu=4)
    expected = (torch.softmax(LOGITS.double(), -1) * mu_law_bin_centres(4, torch.float64)).sum()
    assert values.item() == pytest.approx(expected.item(), rel=1e-6)


def test_sampling_follows_the_distribution() -> None:
    sampling = Sampling("sample")
    uniforms = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ids, _ = sampling.choose(LOGITS.expand(20000, -1), uniforms, mu=4)
    frequencies = torch.bincount(ids, minlength=5).double() / 20000
    assert torch.allclose(frequencies, torch.softmax(LOGITS.double(), -1)[0], atol=0.015)


def test_top_k_and_top_p_restrict_the_support() -> None:
    uniforms = torch.linspace(0, 0.9999, 1000, dtype=torch.float64)
    top2, _ = Sampling(top_k=2).choose(LOGITS.expand(1000, -1), uniforms, mu=4)
    assert set(top2.tolist()) == {1, 3}
    # mass sorted: 0.4, 0.3, 0.15, ... -> top_p 0.8 keeps {1, 3, 4} (0.85 >= 0.8), never 0 or 2
    nucleus, _ = Sampling(top_p=0.8).choose(LOGITS.expand(1000, -1), uniforms, mu=4)
    assert set(nucleus.tolist()) == {1, 3, 4}


def test_low_temperature_approaches_argmax() -> None:
    uniforms = torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ids, _ = Sampling(temperature=0.01).choose(LOGITS.expand(500, -1), uniforms, mu=4)
    assert set(ids.tolist()) == {1}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"strategy": "beam"}, "strategy"),
        ({"temperature": 0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampling_parameters_are_named(kwargs: dict, field: str) -> None:
    with pytest.raises(SamplingError, match=field):
        Sampling(**kwargs)


def test_naive_priming_continues_a_generation() -> None:
    model, local, speaker_ids = model_and_inputs(2, ["alice", "bob"], steps=200)
    sampling = Sampling(seed=9)
    uniforms = sampling.uniforms(2, 200)
    whole = generate_naive(model, local, speaker_ids, sampling, uniforms)
    continued = generate_naive(model, local, speaker_ids, sampling, uniforms[:, 120:], prime=whole.ids[:, :120])
    assert torch.equal(continued.ids, whole.ids[:, 120:])


def test_fast_equals_naive_with_a_narrower_conditioning_width() -> None:
    torch.manual_seed(2)
    model = WaveNet(tiny_config(model={"conditioning_channels": 6})).eval()
    with torch.no_grad():
        local = model.upsample(torch.randn(2, 10, 10))
    assert local.shape == (2, 6, 400)
    sampling = Sampling(seed=1)
    uniforms = sampling.uniforms(2, 400)
    naive = generate_naive(model, local, torch.tensor([0, 1]), sampling, uniforms)
    fast = FastWaveNet(model).generate(local, torch.tensor([0, 1]), sampling, uniforms)
    assert torch.equal(naive.ids, fast.ids)
