"""The student: causal in its noise, log-scale bookkeeping equal to the Jacobian's, one pass per waveform; the
density-distillation estimator against numerical integrals, and the teacher inputs that carry its pathwise gradient."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import tiny_config
from vocoder.audio import mu_law_encode, mu_law_position
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.losses.distillation import density_distillation, logistic_bin_probabilities, mu_law_bin_edges
from vocoder.losses.spectral import multi_resolution_stft_loss, power_loss
from vocoder.models.student import StudentWaveNet, logistic_noise
from vocoder.models.wavenet import WaveNet, shift_right
from vocoder.train.distill import teacher_inputs

STUDENT = {
    "flows": [2, 3],
    "dilation_cycle": 3,
    "residual_channels": 6,
    "gate_channels": 8,
    "skip_channels": 6,
    "conditioning_channels": 5,
    "stft_resolutions": [(64, 16, 64), (128, 32, 128)],
}


def student_config(**overrides: object) -> Config:
    return tiny_config(student={**STUDENT, **overrides})


def random_student(seed: int = 0) -> StudentWaveNet:
    """A student whose heads are not at their (identity-like) initialisation, so every path carries signal."""
    torch.manual_seed(seed)
    model = StudentWaveNet(student_config()).double()
    for flow in model.flows:
        torch.nn.init.normal_(flow.head[1].weight, std=0.3)
    return model


def inputs(model: StudentWaveNet, steps: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z = logistic_noise(torch.rand(2, steps, generator=generator, dtype=torch.float64))
    local = torch.randn(2, model.local_channels, steps, generator=generator, dtype=torch.float64)
    return z, local, torch.tensor([0, 1])


def test_student_is_causal_in_its_noise() -> None:
    model = random_student()
    z, local, speakers = inputs(model, 120)
    base = model(z, local, speakers)
    for t in (0, 37, 119):
        changed = z.clone()
        changed[:, t] += 3.0
        out = model(changed, local, speakers)
        assert torch.equal(out.waveform[:, :t], base.waveform[:, :t])
        assert torch.equal(out.location[:, : t + 1], base.location[:, : t + 1])  # mu_tot, s_tot see only z_<t
        assert torch.equal(out.log_scale[:, : t + 1], base.log_scale[:, : t + 1])
        assert not torch.equal(out.waveform[:, t], base.waveform[:, t])


def test_receptive_field_is_exact() -> None:
    model = random_student()
    z, local, speakers = inputs(model, 200)
    last = model.receptive_field  # output 199 depends on z[199 - receptive_field + 1 .. 199]
    z.requires_grad_(True)
    model(z, local, speakers).waveform[0, 199].backward()
    touched = (z.grad[0] != 0).nonzero().flatten()
    assert int(touched.min()) == 200 - last and int(touched.max()) == 199


def test_log_scales_are_the_log_determinant_and_compose_into_one_logistic() -> None:
    model = random_student()
    z, local, speakers = inputs(model, 24)
    out = model(z, local, speakers)
    jacobian = torch.autograd.functional.jacobian(lambda noise: model(noise, local[:1], speakers[:1]).waveform, z[:1])
    jacobian = jacobian.reshape(24, 24)
    assert torch.allclose(jacobian.triu(1), torch.zeros_like(jacobian))  # lower triangular: IAF
    assert torch.allclose(jacobian.diagonal().log(), out.log_scale[0])
    assert torch.allclose(torch.linalg.slogdet(jacobian).logabsdet, out.log_scale[0].sum())
    assert torch.allclose(out.waveform, z * out.log_scale.exp() + out.location)


def test_a_whole_waveform_is_one_forward_pass() -> None:
    model = StudentWaveNet(student_config()).eval()
    calls: list[str] = []
    for name, module in model.named_modules():
        module.register_forward_hook(lambda *_, name=name: calls.append(name))
    frames = torch.randn(1, 30, 10)
    local = model.upsample(frames)
    calls.clear()
    with torch.inference_mode():
        wav = model.generate(local, torch.tensor([1]), torch.rand(1, local.shape[-1], dtype=torch.float64))
    assert wav.shape == (1, 30 * 40) and float(wav.abs().max()) <= 1.0
    assert calls.count("") == 1  # the student itself ran once for all 1200 samples
    assert calls.count("flows.0") == 1 and calls.count("flows.1") == 1


def test_a_config_without_student_section_is_refused() -> None:
    with pytest.raises(VocoderError, match="student"):
        StudentWaveNet(tiny_config())


# --- the density-distillation estimator ----------------------------------------------------------------------------
MU = 255


def binned_logistic_logits(location: float, scale: float) -> torch.Tensor:
    probabilities = logistic_bin_probabilities(
        torch.tensor([location], dtype=torch.float64),
        torch.tensor([math.log(scale)], dtype=torch.float64),
        mu_law_bin_edges(MU),
    )
    return probabilities.clamp(min=1e-300).log().reshape(1, MU + 1, 1)


def numerical_kl(location: float, scale: float, teacher_logits: torch.Tensor, points: int = 400) -> float:
    """KL(Logistic || piecewise-uniform teacher) by the midpoint rule inside every bin of [-1, 1], plus the student's
    mass outside [-1, 1] (negligible in these cases)."""
    edges = mu_law_bin_edges(MU)
    widths = edges.diff()
    teacher_density = torch.softmax(teacher_logits.flatten(), 0) / widths
    offsets = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    x = edges[:-1, None] + widths[:, None] * offsets  # [bins, points]
    u = (x - location) / scale
    log_density = -u - math.log(scale) - 2 * torch.nn.functional.softplus(-u)
    integrand = log_density.exp() * (log_density - teacher_density.log()[:, None])
    return float((integrand.mean(1) * widths).sum())


@pytest.mark.parametrize(
    ("student", "teacher"),
    [((0.1, 0.02), (0.1, 0.02)), ((0.1, 0.02), (0.13, 0.03)), ((-0.3, 0.05), (-0.2, 0.02)), ((0.0, 0.004), None)],
)
def test_kl_estimator_matches_a_numerical_integral(
    student: tuple[float, float], teacher: tuple[float, float] | None
) -> None:
    location, scale = student
    # None: a teacher sure of one class, the one holding the student's location.
    logits = (
        binned_logistic_logits(*teacher)
        if teacher is not None
        else torch.full((1, MU + 1, 1), -20.0, dtype=torch.float64).index_fill_(
            1, mu_law_encode(torch.tensor([location]), MU), 0.0
        )
    )
    kl, _ = density_distillation(
        torch.tensor([[location]], dtype=torch.float64),
        torch.tensor([[math.log(scale)]], dtype=torch.float64),
        logits,
        mu_law_bin_edges(MU),
    )
    expected = numerical_kl(location, scale, logits)
    assert float(kl) == pytest.approx(expected, rel=1e-3, abs=1e-4)
    if teacher == student:
        assert abs(float(kl)) < 2e-3  # the teacher is the student's own binned density
    else:
        assert float(kl) > 0.05


def test_kl_gradient_moves_the_student_toward_the_teacher() -> None:
    logits = binned_logistic_logits(0.2, 0.03)
    location = torch.tensor([[0.1]], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor([[math.log(0.01)]], dtype=torch.float64, requires_grad=True)
    kl, _ = density_distillation(location, log_scale, logits, mu_law_bin_edges(MU))
    kl.sum().backward()
    assert float(location.grad) < 0 and float(log_scale.grad) < 0  # move right, widen


def test_teacher_inputs_are_the_ids_embeddings_with_a_straight_through_gradient() -> None:
    torch.manual_seed(0)
    teacher = WaveNet(tiny_config()).double().requires_grad_(False)
    mu, steps = teacher.config.audio.mu, 40
    waveform = (torch.rand(2, steps, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    ids = shift_right(mu_law_encode(waveform.detach(), mu), teacher.start_id)
    assert not teacher_inputs(teacher, waveform, mu, pathwise=False).requires_grad
    embedded = teacher_inputs(teacher, waveform, mu, pathwise=True)
    assert torch.equal(embedded, teacher.embedding(ids))  # the values the teacher was trained on, exactly

    def interpolated(wav: torch.Tensor) -> torch.Tensor:  # the embedding, linear between neighbouring classes
        position = mu_law_position(wav, mu)
        low = position.floor().long()
        table = teacher.embedding.weight
        return table[low] + (position - low).unsqueeze(-1) * (table[low + 1] - table[low])

    direction = torch.randn_like(embedded)
    (gradient,) = torch.autograd.grad((embedded * direction).sum(), waveform)
    (expected,) = torch.autograd.grad((interpolated(waveform)[:, :-1] * direction[:, 1:]).sum(), waveform)
    torch.testing.assert_close(gradient, expected)
    assert torch.all(gradient[:, -1] == 0)  # the last sample is no teacher input

    local = torch.randn(2, teacher.local_channels, steps, dtype=torch.float64)
    logits = teacher.forward_embedded(teacher_inputs(teacher, waveform, mu, pathwise=True), local, torch.tensor([0, 1]))
    t = teacher.receptive_field  # the logits at t read x_(t - receptive field) .. x_(t - 1), and every one of them
    (reach,) = torch.autograd.grad(logits[..., t].sum(), waveform)
    assert torch.all(reach[:, t:] == 0) and torch.all(reach[:, :t].abs().sum(0) > 0)


def test_bin_probabilities_sum_to_one_and_keep_float32_tails() -> None:
    location = torch.tensor([[0.0, 0.5, -0.99, 3.0]])
    log_scale = torch.tensor([[-9.0, -4.0, -2.0, -5.0]])
    probabilities = logistic_bin_probabilities(location, log_scale, mu_law_bin_edges(MU))
    assert torch.allclose(probabilities.sum(-1), torch.ones(1, 4))
    assert float(probabilities.min()) >= 0
    assert float(probabilities[0, 3, -1]) == pytest.approx(1.0)  # beyond 1 clamps to the top class
    right_tail = probabilities[0, 1, mu_law_encode(torch.tensor(0.85)) :].sum()
    assert 0 < float(right_tail) < 1e-7  # would round to 0 as 1 - CDF in float32


def test_spectral_losses_vanish_on_equal_audio_and_grow_when_quieter() -> None:
    torch.manual_seed(0)
    reference = 0.3 * torch.randn(2, 2000)
    resolutions = [(64, 16, 64), (128, 32, 128)]
    assert float(power_loss(reference, reference, resolutions[0])) == 0
    assert float(multi_resolution_stft_loss(reference, reference, resolutions)) == pytest.approx(0, abs=1e-6)
    whisper = 0.1 * reference
    assert float(power_loss(whisper, reference, resolutions[0])) > 1
    assert float(multi_resolution_stft_loss(whisper, reference, resolutions)) > 1
