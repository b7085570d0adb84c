import pytest
import torch

from tests.conftest import tiny_config
from vocoder.config import load_config
from vocoder.models.wavenet import WaveNet, shift_right, silence_id


def test_seed_size_parameter_count() -> None:
    """30 layers in 3 cycles of 1..512, 64 residual / 128 gate / 256 skip channels, 256 classes, 80 mels."""
    model = WaveNet(load_config("seed_size"))
    residual, gate, skip, mels, classes, speaker_dim, layers = 64, 128, 256, 80, 256, 16, 30
    per_layer = (
        residual * gate * 2
        + gate  # dilated conv, kernel 2
        + mels * gate  # local conditioning projection
        + speaker_dim * gate  # global conditioning projection
        + (gate // 2) * (residual + skip)
        + residual
        + skip  # residual and skip 1x1s
    )
    expected = (
        classes * residual  # input embedding (one-hot x matrix)
        + residual * residual * 2
        + residual  # causal input conv, kernel 2
        + mels * mels * 3
        + mels
        + (9 + 11 + 21)  # upsampler: frame conv + smoothers for scales 4, 5, 10
        + 3 * speaker_dim  # speaker embedding
        + layers * per_layer
        + skip * skip
        + skip
        + skip * classes
        + classes  # output head: S x S and S x 256 1x1 convs
    )
    assert model.parameter_count() == expected == 1_663_593


def test_seed_size_receptive_field() -> None:
    model = WaveNet(load_config("seed_size"))
    assert model.receptive_field == 3 * 1023 + 1 + 1
    assert model.receptive_field_ms == pytest.approx(3071 / 16)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_shapes(kernel_size: int) -> None:
    config = tiny_config(model={"kernel_size": kernel_size})
    model = WaveNet(config)
    frames = torch.randn(3, 7, 10)
    local = model.upsample(frames)
    assert local.shape == (3, 10, 7 * 40)
    logits = model(torch.randint(0, 256, (3, 280)), local, torch.tensor([0, 1, 1]))
    assert logits.shape == (3, 256, 280)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_exact_causality(kernel_size: int) -> None:
    """Changing the sample at t never changes the logits of samples up to t (those at positions <= t)."""
    torch.manual_seed(0)
    model = WaveNet(tiny_config(model={"kernel_size": kernel_size})).eval()
    steps = 200
    samples = torch.randint(0, 256, (1, steps))
    local = torch.randn(1, 10, steps)
    speaker = torch.tensor([1])
    with torch.no_grad():
        before = model(shift_right(samples, model.start_id), local, speaker)
        for t in (0, 37, 120, steps - 2):
            changed = samples.clone()
            changed[0, t] = (changed[0, t] + 128) % 256
            after = model(shift_right(changed, model.start_id), local, speaker)
            assert torch.equal(after[..., : t + 1], before[..., : t + 1])
            assert not torch.allclose(after[..., t + 1], before[..., t + 1])
            receptive_end = t + model.receptive_field
            if receptive_end < steps:  # and nothing beyond the receptive field
                assert torch.allclose(after[..., receptive_end:], before[..., receptive_end:], atol=1e-6)


def test_silence_is_the_start_input() -> None:
    assert silence_id(255) == 128
    assert shift_right(torch.tensor([[5, 6, 7]]), 128).tolist() == [[128, 5, 6]]


def test_single_speaker_model_has_no_speaker_embedding() -> None:
    model = WaveNet(tiny_config(speakers=[]))
    assert model.speaker_embedding is None
    assert model(torch.zeros(1, 40, dtype=torch.long), torch.zeros(1, 10, 40)).shape == (1, 256, 40)


def test_multi_speaker_model_requires_a_speaker() -> None:
    model = WaveNet(tiny_config())
    with pytest.raises(ValueError, match="speaker id"):
        model(torch.zeros(1, 40, dtype=torch.long), torch.zeros(1, 10, 40))
