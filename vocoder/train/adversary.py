"""The discriminator that trains beside a distilled student (`student.adversarial_weight`, docs/STUDENT.md).

It owns the discriminator, its AdamW (constant learning rate, HiFi-GAN's betas) and, under torchrun, its
DistributedDataParallel wrapper; its state travels in every distillation checkpoint. Each training step, once the
step reaches `student.adversarial_start_step`, the discriminator first takes its own step on the student's sample
(detached) against the real audio, then scores the same sample for the student's adversarial and feature-matching
losses (HiFi-GAN's order). It is run in float32 whatever the autocast: it is small, and its losses need no scaler.
The student's EMA is unchanged; the discriminator needs none (it is not exported).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from vocoder.config import StudentConfig
from vocoder.errors import VocoderError
from vocoder.losses.adversarial import discriminator_loss, feature_matching_loss, generator_loss
from vocoder.models.discriminator import MultiPeriodDiscriminator
from vocoder.train.distributed import DistributedContext

STATE_KEYS = ("discriminator", "discriminator_optimizer")
"""The checkpoint fields the adversary's state is saved under."""


class Adversary:
    """A multi-period discriminator and its optimizer, trained against the student's samples."""

    def __init__(self, student: StudentConfig, device: torch.device) -> None:
        settings = student.discriminator
        assert settings is not None  # StudentConfig requires it when either term is weighted
        self.adversarial_weight = student.adversarial_weight
        self.feature_matching_weight = student.feature_matching_weight
        self.start_step = student.adversarial_start_step
        self.discriminator = MultiPeriodDiscriminator(settings).to(device)
        self.optimizer = torch.optim.AdamW(
            self.discriminator.parameters(), lr=settings.learning_rate, betas=settings.betas, weight_decay=0.0
        )
        self.network: torch.nn.Module = self.discriminator

    def distribute(self, dist: DistributedContext) -> None:
        """Wrap the discriminator for DDP (after its state is restored, as the student is): its gradients are then
        averaged over the ranks, which start from rank 0's weights."""
        if dist.enabled:
            self.network = DistributedDataParallel(
                self.discriminator, device_ids=[dist.device] if dist.device.type == "cuda" else None
            )

    def active(self, step: int) -> bool:
        return step >= self.start_step

    def train_discriminator(self, generated: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        """One step of the discriminator on `real [B, T]` against `generated [B, T]` (detached here)."""
        judged = self.network(torch.cat([real, generated.detach()]))
        loss = discriminator_loss(judged, len(real))
        if not torch.isfinite(loss):
            raise VocoderError(
                f"the discriminator's loss became {loss.item()}; lower student.discriminator.learning_rate and resume "
                "from the last checkpoint"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"discriminator": loss.item()}

    def student_loss(self, generated: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted adversarial and feature-matching losses of `generated` (differentiable in it)."""
        judged = self.network(torch.cat([real, generated]))
        adversarial = generator_loss(judged, len(real))
        matching = feature_matching_loss(judged, len(real))
        total = self.adversarial_weight * adversarial + self.feature_matching_weight * matching
        return total, {"adversarial": adversarial.item(), "feature_matching": matching.item()}

    def state_dict(self) -> dict[str, Any]:
        return dict(zip(STATE_KEYS, (self.discriminator.state_dict(), self.optimizer.state_dict()), strict=True))

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise VocoderError(
                f"{source}: field {missing[0]!r} missing: the config trains a discriminator (student.discriminator) "
                "but the saved state holds none"
            )
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["discriminator_optimizer"])
