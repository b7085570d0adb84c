"""Distilling a Parallel WaveNet student from a frozen teacher.

The teacher's training loop (`Trainer`: segments, AdamW schedule, EMA, checkpoints, resume, DDP, TensorBoard) with
the student as the model and this loss per segment:

1. the student turns logistic noise z into a sample x in one pass, with its per-sample logistics (mu_tot, s_tot);
2. the frozen teacher scores x teacher-forced: its inputs are the mu-law ids of x, detached. The teacher reads
   discrete ids, so no gradient can pass through its inputs; the gradient reaches the student through the
   closed-form cross-entropy over bins, which is differentiable in mu_tot and s_tot, and through the entropy
   and spectral terms, which are differentiable in x;
3. loss = kl_weight * KL + power_weight * power loss + stft_weight * multi-resolution STFT loss, each averaged over
   the segment's loss samples (`vocoder.train.distill_losses`). The real audio is the mu-law decoded segment.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vocoder.audio import mu_law_decode, mu_law_encode
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.generate import Sampling
from vocoder.models.checkpoint import load_weights, read_model_file, resolve_model_path
from vocoder.models.student import StudentOutput, StudentWaveNet, logistic_noise
from vocoder.models.wavenet import WaveNet, shift_right
from vocoder.train.data import Batch
from vocoder.train.distill_losses import (
    density_distillation,
    mu_law_bin_edges,
    multi_resolution_stft_loss,
    power_loss,
    student_entropy,
)
from vocoder.train.trainer import Trainer

TEACHER_SECTIONS = ("audio", "features", "model", "speakers")
"""The config sections a student shares with its teacher: they must match the teacher file's."""


def teacher_identity(path: Path) -> dict[str, str]:
    """What names a teacher file: its location and the SHA-256 of its bytes (a retrained teacher differs)."""
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_teacher(name_or_path: str | Path, config: Config) -> WaveNet:
    """The frozen teacher, checked to be a teacher of the same audio, features, model and speakers as `config`."""
    path = resolve_model_path(name_or_path)
    weights, teacher_config, kind, _ = read_model_file(path)
    if kind != "teacher":
        raise VocoderError(f"{path}: --teacher must be a teacher model, found kind {kind!r}")
    for section in TEACHER_SECTIONS:
        if getattr(teacher_config, section) != getattr(config, section):
            raise VocoderError(f"{path}: the teacher's '{section}' section differs from the config's")
    teacher = WaveNet(teacher_config)
    load_weights(teacher, weights, path)
    return teacher.requires_grad_(False).eval()


class DistillTrainer(Trainer):
    """Trains a `StudentWaveNet` (the config's `student` section) against a frozen teacher."""

    model_kind = "student"
    frozen_sections = (*Trainer.frozen_sections, "student")

    def __init__(
        self,
        teacher: str | Path,
        config: Config,
        data_dir: Path,
        run_dir: Path,
        device: str | None = None,
        resume: bool = False,
        max_steps: int | None = None,
    ) -> None:
        if config.student is None:
            raise VocoderError(f"config {config.name!r} has no 'student' section to distill")
        segment = config.train.segment_frames * config.features.hop_length
        longest = max(n_fft for n_fft, _, _ in config.student.stft_resolutions)
        if segment < longest:  # the spectral losses compare the loss samples: at least one full window of them
            raise VocoderError(
                f"train.segment_frames: segments of {segment} loss samples are too short for an STFT of n_fft "
                f"{longest} (student.stft_resolutions); use longer segments or smaller resolutions"
            )
        teacher_path = resolve_model_path(teacher)
        self.teacher = load_teacher(teacher_path, config)
        self.teacher_identity = teacher_identity(teacher_path)
        self.edges = mu_law_bin_edges(config.audio.mu)
        super().__init__(config, data_dir, run_dir, device, resume, max_steps)

    def run_metadata(self) -> dict[str, Any]:
        return {"teacher": self.teacher_identity}

    def _restore(self, state: dict[str, Any]) -> None:
        """Resume only against the teacher the checkpoint was distilled from (same bytes, wherever the file is)."""
        saved = state.get("run", {}).get("teacher")
        if saved is not None and saved["sha256"] != self.teacher_identity["sha256"]:
            raise VocoderError(
                f"--resume: the checkpoints in {self.store.directory} were distilled from the teacher "
                f"{saved['file']} (sha256 {saved['sha256'][:12]}), not from {self.teacher_identity['file']} "
                f"(sha256 {self.teacher_identity['sha256'][:12]}); pass that teacher or use another --out"
            )
        super()._restore(state)

    def build_model(self) -> torch.nn.Module:
        """The student; the teacher and the bin edges move to the training device with it."""
        self.teacher.to(self.dist.device)
        self.edges = self.edges.to(self.dist.device)
        return StudentWaveNet(self.config)

    def context_receptive_field(self) -> int:
        """The teacher scores every loss sample over its full receptive field of the student's output, and each
        flow sees a full receptive field of its input."""
        return max(self.teacher.receptive_field, self.model.flow_receptive_field)

    def compute_loss(self, network: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        core = network.module if isinstance(network, DistributedDataParallel) else network
        local = core.upsample(batch.frames)[:, :, self.margin_samples : -self.margin_samples]
        z = logistic_noise(torch.rand(batch.targets.shape, device=local.device, dtype=local.dtype))
        return self.objective(network(z, local, batch.speaker_ids), batch)

    def objective(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted distillation loss of one student sample, and its parts (in nats per sample for KL)."""
        student = self.config.student
        mu = self.config.audio.mu
        with torch.no_grad():
            inputs = shift_right(mu_law_encode(output.waveform.detach().float(), mu), self.teacher.start_id)
            local = self.teacher.upsample(batch.frames)[:, :, self.margin_samples : -self.margin_samples]
            logits = self.teacher(inputs, local, batch.speaker_ids).float()
        with torch.autocast(self.dist.device.type, enabled=False):  # CDFs, logs and STFTs in float32 under AMP
            location, log_scale = output.location.float(), output.log_scale.float()
            kl, cross_entropy = density_distillation(location, log_scale, logits, self.edges)
            mask = batch.mask
            count = mask.sum().clamp(min=1)
            kl = (kl * mask).sum() / count
            generated = output.waveform.float() * mask
            reference = mu_law_decode(batch.targets, mu) * mask
            power = power_loss(generated, reference, student.stft_resolutions[0])
            stft = multi_resolution_stft_loss(generated, reference, student.stft_resolutions)
        total = student.kl_weight * kl + student.power_weight * power + student.stft_weight * stft
        parts = {
            "kl": kl.item(),
            "cross_entropy": ((cross_entropy * mask).sum() / count).item(),
            "entropy": ((student_entropy(log_scale) * mask).sum() / count).item(),
            "power": power.item(),
            "stft": stft.item(),
        }
        return total, parts

    def validation_loss(self, batch: Batch) -> float:
        """The loss under the same noise at every validation, so validation losses compare across steps."""
        devices = [self.dist.device] if self.dist.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.train.seed)
            return self.compute_loss(self.ema, batch)[0].item()

    def synthesize_sample(self, conditioning: torch.Tensor, speaker: torch.Tensor | None) -> np.ndarray:
        local = self.ema.upsample(conditioning)
        uniforms = Sampling(seed=0).uniforms(1, local.shape[-1])
        return self.ema.generate(local, speaker, uniforms)[0].cpu().numpy()
