"""Least-squares GAN losses and feature matching for the student's adversarial term (Parallel WaveGAN, HiFi-GAN).

The discriminator judges the real and the generated waveforms in one call, stacked along the batch (real rows
first): one forward pass, one backward pass, which DistributedDataParallel requires of a wrapped module. Each view
of the discriminator gives `(scores [B, N], features)`; the losses average over views, so their scale does not
depend on how many periods the discriminator has.

Least squares (Mao et al., 2017) rather than the log loss: the discriminator is pushed to 1 on real and 0 on
generated audio, the student to 1, and the gradients do not vanish when the discriminator wins, which it does early
against a whispering student.
"""

from __future__ import annotations

import torch

Judged = list[tuple[torch.Tensor, list[torch.Tensor]]]
"""A discriminator's verdict on a stacked batch: each view's (scores, features)."""


def discriminator_loss(judged: Judged, real: int) -> torch.Tensor:
    """Mean over views of E[(1 - D(real))^2] + E[D(generated)^2]; the first `real` rows are the real audio."""
    terms = [(1 - scores[:real]).square().mean() + scores[real:].square().mean() for scores, _ in judged]
    return torch.stack(terms).mean()


def generator_loss(judged: Judged, real: int) -> torch.Tensor:
    """Mean over views of E[(1 - D(generated))^2]: falls as the discriminator takes the generated rows for real."""
    return torch.stack([(1 - scores[real:]).square().mean() for scores, _ in judged]).mean()


def feature_matching_loss(judged: Judged, real: int) -> torch.Tensor:
    """Mean over views and layers of the mean |F(real) - F(generated)|, the real features held fixed."""
    terms = [(feature[:real].detach() - feature[real:]).abs().mean() for _, features in judged for feature in features]
    return torch.stack(terms).mean()
