"""The student's adversarial term: the multi-period discriminator's shapes and gradients, the signs of the
least-squares losses on a toy, the term in the distillation objective, its checkpointed state (resume, resume-from,
DDP), the config refusals, and the signal domain the discriminator judges under pre-emphasis."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import test_distill
from tests.conftest import HEAVY, tiny_config
from tests.test_distill import TRAIN, distill_config, distill_dict
from tests.test_train import build_cache
from vocoder.audio import load_wav, mu_law_encode, preemphasize
from vocoder.config import ConfigError, DiscriminatorConfig, config_from_dict, load_config
from vocoder.corpus.cache import FeatureCache
from vocoder.errors import VocoderError
from vocoder.losses.adversarial import discriminator_loss, generator_loss
from vocoder.models.checkpoint import save_model
from vocoder.models.discriminator import MultiPeriodDiscriminator
from vocoder.models.wavenet import WaveNet
from vocoder.train.adversary import Adversary
from vocoder.train.checkpoints import read_checkpoint
from vocoder.train.distill import DistillTrainer

DISCRIMINATOR = {"periods": [2, 3, 5], "channels": [4, 8], "kernel_size": 5, "stride": 3, "learning_rate": 1e-3}
ADVERSARIAL = {"adversarial_weight": 0.5, "feature_matching_weight": 0.2, "discriminator": DISCRIMINATOR}


cache_dir = test_distill.cache_dir  # the distillation tests' tiny cache and teacher, as fixtures of this module
teacher_file = test_distill.teacher_file


def test_every_view_scores_and_passes_gradients_back_to_the_waveform() -> None:
    settings = DiscriminatorConfig(**DISCRIMINATOR)
    torch.manual_seed(0)
    discriminator = MultiPeriodDiscriminator(settings)
    waveform = (0.1 * torch.randn(3, 1001)).requires_grad_()  # not a multiple of any period: padded per view
    judged = discriminator(waveform)
    assert len(judged) == 3
    for (scores, features), period in zip(judged, settings.periods, strict=True):
        rows = -(-1001 // period)
        for _ in settings.channels:
            rows = (rows + 2 * 2 - 5) // 3 + 1  # a strided conv with (k - 1) / 2 padding
        assert scores.shape == (3, rows * period), period
        assert len(features) == len(settings.channels) + 2 and features[-1].flatten(1).shape == scores.shape
    sum(scores.sum() for scores, _ in judged).backward()
    assert waveform.grad is not None and waveform.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())
    # The view of period p sees whether samples p apart repeat: a waveform and the same one with its samples
    # permuted within each period-p column get the same first-layer features, up to the column order.
    view = discriminator.views[0]
    x = torch.randn(1, 600)
    swapped = x.view(1, 300, 2).flip(-1).reshape(1, 600)  # columns 0 and 1 of the period-2 view exchanged
    first, other = view.convs[0](x.view(1, 1, 300, 2)), view.convs[0](swapped.view(1, 1, 300, 2))
    assert torch.allclose(first, other.flip(-1))


def voiced(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Toy 'real' audio: harmonic waveforms of a period of 10 samples, random phase."""
    phase = torch.rand(count, 1, generator=generator) * 2 * math.pi
    t = torch.arange(length)
    return 0.3 * torch.sin(2 * math.pi * t / 10 + phase) + 0.15 * torch.sin(4 * math.pi * t / 10 + 2 * phase)


def test_the_discriminator_learns_to_separate_and_the_generator_loss_falls_as_it_is_fooled() -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    fast = {**ADVERSARIAL, "discriminator": {**DISCRIMINATOR, "learning_rate": 1e-2}}
    adversary = Adversary(distill_config(**fast).student, torch.device("cpu"))
    real = voiced(8, 400, generator)
    fake = 0.2 * torch.randn(8, 400, generator=generator)  # noise of about the same power: whispering
    losses = [adversary.train_discriminator(fake, real)["discriminator"] for _ in range(60)]
    judged = adversary.network(torch.cat([real, fake]))
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    assert all(scores[:8].mean() > scores[8:].mean() + 0.5 for scores, _ in judged)  # real near 1, generated near 0
    assert discriminator_loss(judged, 8) < 0.1

    # The student's side: gradient descent on the generated waveform alone (the discriminator frozen) fools it.
    adversary.discriminator.requires_grad_(False)
    sample = fake.clone().requires_grad_()
    optimizer = torch.optim.Adam([sample], lr=1e-2)
    fooled = []
    for _ in range(60):
        loss, parts = adversary.student_loss(sample, real)
        fooled.append(parts["adversarial"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fooled[-1] < 0.3 * fooled[0], (fooled[0], fooled[-1])
    after = adversary.network(torch.cat([real, sample.detach()]))
    assert generator_loss(after, 8) < 0.3 * generator_loss(judged, 8)
    for (scores, _), (earlier, _) in zip(after, judged, strict=True):  # taken for real now: scores towards 1
        assert scores[8:].mean() > earlier[8:].mean() + 0.3


def test_the_adversarial_terms_join_the_objective_at_their_start_step(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    config = distill_config({"max_steps": 4}, adversarial_start_step=1, **ADVERSARIAL)
    trainer = DistillTrainer(teacher_file, config, cache_dir, tmp_path, "cpu")
    batch = trainer.sampler.batch([0, 1], torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in trainer.adversary.discriminator.state_dict().items()}
    _, parts = trainer.compute_loss(trainer.model, batch)  # step 0: not yet
    assert "adversarial" not in parts and "discriminator" not in parts
    assert all(torch.equal(v, trainer.adversary.discriminator.state_dict()[k]) for k, v in before.items())

    trainer.step = 1
    torch.manual_seed(5)
    objective, _ = trainer.objective(trainer.student_sample(trainer.model, batch), batch)
    torch.manual_seed(5)
    total, parts = trainer.compute_loss(trainer.model, batch)
    assert {"discriminator", "adversarial", "feature_matching"} <= set(parts)
    expected = objective.item() + 0.5 * parts["adversarial"] + 0.2 * parts["feature_matching"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert any(not torch.equal(v, trainer.adversary.discriminator.state_dict()[k]) for k, v in before.items())
    trainer.model.zero_grad()
    total.backward()  # the student gets gradients through the discriminator's verdict
    assert all(p.grad is not None for p in trainer.model.parameters() if p.requires_grad)
    with torch.random.fork_rng():  # the validation loss leaves the adversarial terms out
        torch.manual_seed(config.train.seed)
        expected = trainer.objective(trainer.student_sample(trainer.ema, batch), batch)[0].item()
    assert trainer.validation_loss(batch) == pytest.approx(expected, rel=1e-6)


def test_off_by_default_builds_no_discriminator_and_saves_none(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    assert distill_config().student.adversarial_weight == 0
    trainer = DistillTrainer(teacher_file, distill_config(), cache_dir, tmp_path, "cpu", max_steps=2)
    trainer.run()
    assert trainer.adversary is None
    state = read_checkpoint(tmp_path / "checkpoints" / "step_00000002.pt")
    assert not {"discriminator", "discriminator_optimizer"} & set(state)
    # Settings with a zero weight (an A/B arm) are off too.
    weighted_off = distill_config(adversarial_weight=0, discriminator=DISCRIMINATOR)
    assert DistillTrainer(teacher_file, weighted_off, cache_dir, tmp_path / "off", "cpu").adversary is None


def test_resume_and_resume_from_continue_exactly_with_the_discriminator(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    config = distill_config(adversarial_start_step=1, **ADVERSARIAL)
    straight = DistillTrainer(teacher_file, config, cache_dir, tmp_path / "straight", "cpu")
    straight.run()
    DistillTrainer(teacher_file, config, cache_dir, tmp_path / "split", "cpu", max_steps=2).run()
    state = read_checkpoint(tmp_path / "split" / "checkpoints" / "step_00000002.pt")  # weights_only=True
    assert state["discriminator"].keys() == straight.adversary.discriminator.state_dict().keys()
    assert state["discriminator_optimizer"]["state"]  # it has taken a step (step 1 of 0, 1)
    resumed = DistillTrainer(teacher_file, config, cache_dir, tmp_path / "split", "cpu", resume=True)
    resumed.run()
    elsewhere = DistillTrainer(
        teacher_file,
        config,
        cache_dir,
        tmp_path / "elsewhere",
        "cpu",
        resume_from=tmp_path / "split" / "checkpoints" / "step_00000002.pt",
    )
    assert elsewhere.step == 2
    elsewhere.run()
    for other in (resumed, elsewhere):
        for module in ("model", "ema"):
            mine, theirs = getattr(straight, module).state_dict(), getattr(other, module).state_dict()
            assert all(torch.equal(value, theirs[name]) for name, value in mine.items()), module
        mine, theirs = straight.adversary.state_dict(), other.adversary.state_dict()
        assert all(torch.equal(v, theirs["discriminator"][k]) for k, v in mine["discriminator"].items())
        for index, moments in mine["discriminator_optimizer"]["state"].items():
            found = theirs["discriminator_optimizer"]["state"][index]
            assert all(torch.equal(value, found[key]) for key, value in moments.items())
    with pytest.raises(VocoderError, match="field 'discriminator' missing"):
        resumed.adversary.load_state_dict({"discriminator_optimizer": {}}, "state.pt")


@pytest.mark.parametrize(
    ("student", "train", "field"),
    [
        ({"adversarial_weight": -1.0, "discriminator": DISCRIMINATOR}, {}, "student.adversarial_weight"),
        ({"adversarial_weight": 1.0}, {}, "student.discriminator"),
        ({"feature_matching_weight": 1.0}, {}, "student.discriminator"),
        ({**ADVERSARIAL, "adversarial_start_step": 4}, {"max_steps": 4}, "student.adversarial_start_step"),
        ({**ADVERSARIAL, "discriminator": {**DISCRIMINATOR, "periods": [2, 2]}}, {}, "student.discriminator.periods"),
        ({**ADVERSARIAL, "discriminator": {**DISCRIMINATOR, "learning_rate": 0}}, {}, "learning_rate"),
        ({**ADVERSARIAL, "discriminator": {**DISCRIMINATOR, "channels": []}}, {}, "student.discriminator.channels"),
    ],
)
def test_bad_adversarial_settings_are_refused_naming_the_field(
    student: dict[str, object], train: dict[str, object], field: str
) -> None:
    data = distill_dict(**student)
    data["train"] = {**TRAIN, **train}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(data, "bad.yaml")


def test_the_discriminator_judges_the_pre_emphasised_domain(tmp_path: Path) -> None:
    """Under pre-emphasis the student's sample is pre-emphasised audio (the teacher's density is over it): the real
    audio the discriminator sees must be pre-emphasised too, not the recording, and lie in the targets' bins."""
    config = distill_config(**ADVERSARIAL).model_copy(
        update={"audio": tiny_config().audio.model_copy(update={"preemphasis": 0.85})}
    )
    cache = build_cache(tmp_path / "cache", config)
    torch.manual_seed(0)
    teacher = save_model(tmp_path / "t" / "model.safetensors", WaveNet(config), config, "teacher", {})
    trainer = DistillTrainer(teacher, config, cache, tmp_path / "run", "cpu")
    utterance = trainer.corpus.utterances[2]
    loss_start = 1
    frames, audio, mask = trainer.sampler.segment(utterance, loss_start)
    batch = trainer.sampler._collate([(frames, audio, mask)], [2], torch.Generator().manual_seed(0))
    waveform = torch.randn(batch.targets.shape)
    generated, real = trainer.adversarial_signals(waveform, batch)

    hop, samples = config.features.hop_length, config.train.segment_frames * config.features.hop_length
    recording = load_wav(FeatureCache(cache).audio_path(utterance.row.id), config.audio.sample_rate)
    span = slice(loss_start * hop, loss_start * hop + samples)
    emphasised = torch.from_numpy(preemphasize(recording, 0.85)[span])
    plain = torch.from_numpy(recording[span])
    assert mask[-samples:].all()  # the loss span lies inside the utterance
    assert torch.equal(generated, waveform[:, -samples:])  # the student's sample as it is: not de-emphasised
    ids = batch.targets[0, -samples:]
    assert torch.equal(ids, mu_law_encode(emphasised, config.audio.mu))  # the teacher's targets: pre-emphasised
    low, high = trainer.edges[ids].float(), trainer.edges[ids + 1].float()
    assert ((real[0] >= low - 1e-6) & (real[0] <= high + 1e-6)).all()  # in the targets' bins
    position = (real[0] - low) / (high - low)  # spread over each bin, not on the decoded levels
    assert 0.45 < position.mean() < 0.55 and 0.25 < position.std() < 0.33
    width = (high - low).max().item()
    assert (real[0] - emphasised).abs().max() <= width and (real[0] - plain).abs().max() > 4 * width
    assert np.corrcoef(real[0].numpy(), emphasised.numpy())[0, 1] > 0.99


def test_the_real_student_recipe_trains_a_discriminator_on_the_real_teachers_domain() -> None:
    config = load_config("real_student")
    teacher = load_config("real_teacher")
    assert config.student.adversarial and config.student.discriminator is not None
    assert all(getattr(config, section) == getattr(teacher, section) for section in ("audio", "features", "model"))
    assert config.audio.preemphasis == 0.85
    assert config.student.adversarial_start_step < config.train.max_steps


@pytest.mark.slow
@HEAVY
def test_ddp_distills_with_the_discriminator_and_checkpoints_it(
    cache_dir: Path, teacher_file: Path, tmp_path: Path
) -> None:
    config = test_distill.distill_under_ddp(distill_dict(**ADVERSARIAL), cache_dir, teacher_file, tmp_path)
    state = read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt")
    assert state["discriminator_optimizer"]["state"]
    resumed = DistillTrainer(
        teacher_file, load_config(config), cache_dir, tmp_path / "run", "cpu", resume=True, max_steps=3
    )
    assert resumed.step == 2
    restored = resumed.adversary.discriminator.state_dict()
    assert all(torch.equal(value, restored[name]) for name, value in state["discriminator"].items())
    assert resumed.run().step == 3
