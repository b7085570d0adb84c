"""The models' exports (`export_weights`) are the whole contract with the fast generators: every weight a step
uses is in them, in the step layout, detached and frozen."""

import dataclasses

import pytest
import torch

from tests.conftest import tiny_config
from tests.test_student_kernel import random_student
from vocoder.models.layers import GatedResidualLayer
from vocoder.models.step_weights import GatedLayerWeights
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet


def exported_parameters(model: WaveNet | StudentWaveNet) -> set[str]:
    """The names of the parameters whose values reach the export: each is perturbed in turn and the export
    compared with the unperturbed one."""
    before = [t.clone() for t in model.export_weights().tensors]
    reached = set()
    for name, parameter in model.named_parameters():
        saved = parameter.detach().clone()
        with torch.no_grad():
            parameter.add_(torch.linspace(0.5, 1.5, parameter.numel()).view_as(parameter))
        after = model.export_weights().tensors
        if len(after) != len(before) or any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)):
            reached.add(name)
        with torch.no_grad():
            parameter.copy_(saved)
    return reached


@pytest.mark.parametrize("speakers", [["alice", "bob"], []], ids=["speakers", "one-speaker"])
def test_the_teacher_export_holds_every_weight_but_the_upsampler(speakers: list[str]) -> None:
    """The upsampler makes the conditioning the generators read (`model.conditioning`); everything else is
    per-step weights, and all of it must be exported or a generator would still reach into the model."""
    torch.manual_seed(0)
    model = WaveNet(tiny_config(speakers=speakers)).eval()
    names = {name for name, _ in model.named_parameters()}
    upsampler = {name for name in names if name.startswith("upsampler.")}
    assert upsampler and exported_parameters(model) == names - upsampler


def test_the_student_export_holds_every_weight_but_the_upsampler() -> None:
    model = random_student()
    names = {name for name, _ in model.named_parameters()}
    upsampler = {name for name in names if name.startswith("upsampler.")}
    assert model.speaker_embedding is not None and upsampler
    assert exported_parameters(model) == names - upsampler


def test_the_teacher_export_is_in_the_step_layout() -> None:
    """`[in, out]` matrices a step multiplies from the right, taps oldest first, nothing tracked by autograd."""
    torch.manual_seed(0)
    config = tiny_config(model={"kernel_size": 3, "input_kernel_size": 2}, speakers=["alice", "bob"])
    model = WaveNet(config).eval()
    m, weights = config.model, model.export_weights()
    layers = len(m.dilations)
    residual, gate, skip, local = m.residual_channels, m.gate_channels, m.skip_channels, model.local_channels
    assert weights.embedding.shape == (config.audio.classes, residual)
    assert weights.input_taps.shape == (2 * residual, residual) and weights.input_kernel_size == 2
    assert [t.shape for t in weights.layers.conv_taps] == [(3 * residual, gate)] * layers
    assert weights.layers.kernel_sizes == (3,) * layers and weights.layers.dilations == tuple(m.dilations)
    assert weights.layers.local.shape == (layers, local, gate)
    assert weights.layers.speaker is not None and weights.layers.speaker.shape == (
        layers,
        m.speaker_embedding_dim,
        gate,
    )
    assert weights.layers.residual_skip.shape == (layers, gate // 2, residual + skip)
    assert weights.head_hidden.shape == (skip, skip) and weights.head_logits.shape == (skip, config.audio.classes)
    assert (weights.mu, weights.start_id, weights.skip_scale) == (config.audio.mu, model.start_id, model.skip_scale)
    assert not any(t.requires_grad for t in weights.tensors)
    # The newest tap multiplies the newest input: the one-step conv of a constant input is the model's conv.
    x = torch.randn(1, residual, 7)
    newest = model.layers[0].conv(x)[0, :, -1]
    taps = x[0, :, -1 - 2 * m.dilations[0] :: m.dilations[0]].T.flatten()
    step = taps @ weights.layers.conv_taps[0] + weights.layers.conv_bias[0]
    assert torch.allclose(step, newest, atol=1e-5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        weights.skip_scale = 1.0  # type: ignore[misc]


def test_a_speaker_id_is_required_of_a_multi_speaker_export() -> None:
    model = WaveNet(tiny_config(speakers=["alice", "bob"])).eval()
    weights = model.export_weights()
    assert torch.equal(weights.speaker_vector(torch.tensor([1, 0])), model.speaker_vector(torch.tensor([1, 0])))
    with pytest.raises(ValueError, match="a speaker id per utterance is required"):
        weights.speaker_vector(None)
    assert WaveNet(tiny_config(speakers=[])).export_weights().speaker_vector(None) is None


def test_layers_without_local_conditioning_are_refused() -> None:
    layer = GatedResidualLayer(4, 8, 6, 2, 1, local_channels=0, global_channels=0, dropout=0.0)
    with pytest.raises(ValueError, match="no local conditioning"):
        GatedLayerWeights.of([layer])
