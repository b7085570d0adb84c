"""Distilling a Parallel WaveNet student from a frozen teacher.

The teacher's training loop (`Trainer`: segments, AdamW schedule, EMA, checkpoints, resume, DDP, TensorBoard) with
the student as the model and this loss per segment:

1. the student turns logistic noise z into a sample x in one pass, with its per-sample logistics (mu_tot, s_tot);
2. the frozen teacher scores x teacher-forced, on the embeddings of the mu-law ids of x. The gradient reaches the
   student through the closed-form cross-entropy over bins, which is differentiable in mu_tot and s_tot, through
   the entropy and spectral terms, which are differentiable in x, and (`student.pathwise_gradient`) through the
   teacher's inputs by a straight-through relaxation of its embedding (`teacher_inputs`). An LPC teacher
   (`model.lpc_order > 0`) also reads the class id of p_t = sum_k a_k x_(t-k), predicted from the student's own
   past with the frame's coefficients from the mel (the teacher's `lpc`), and its classes are those of the
   excitation x_t - p_t: the student's logistic is scored shifted by -p_t (`density_distillation`), and the
   student still outputs the signal x, which synthesis uses as it is (no LPC in a student);
3. loss = kl_weight * KL - contrastive_weight * KL under the wrong conditioning + power_weight * power loss
   + stft_weight * multi-resolution STFT loss, each averaged over the segment's loss samples
   (`vocoder.losses.distillation`, `vocoder.losses.spectral`). The real audio is the mu-law decoded segment (the
   signal's, never an LPC model's excitation targets); the wrong conditioning is the segment's own rotated by half
   its length (other phones at every sample, and for an LPC teacher their predictors), which the same sample should
   not fit;
4. with `student.adversarial_weight` (or `feature_matching_weight`), from `adversarial_start_step` on, plus the
   least-squares GAN and feature-matching losses of the sample against a multi-period discriminator that takes its
   own step first (`vocoder.train.adversary`). It judges the loss samples in the model's signal domain (pre-emphasised
   when `audio.preemphasis` is set), as the teacher's density does: the student's sample, and the real segment drawn
   uniformly within each of its mu-law bins, which is a sample of the density the teacher's categorical stands for
   (`adversarial_signals`); validation losses leave these terms out, so they compare across steps and runs.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vocoder.audio import mu_law_decode, mu_law_encode, mu_law_position
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.lpc import predict_samples, sample_coefficients
from vocoder.generate import Sampling
from vocoder.losses.distillation import density_distillation, mu_law_bin_edges, student_entropy
from vocoder.losses.spectral import multi_resolution_stft_loss, power_loss
from vocoder.models.checkpoint import (
    build_model,
    file_identity,
    load_weights,
    read_model_header,
    resolve_model_path,
)
from vocoder.models.student import StudentOutput, StudentWaveNet, logistic_noise
from vocoder.models.wavenet import WaveNet
from vocoder.train.adversary import Adversary
from vocoder.train.data import Batch
from vocoder.train.trainer import Trainer
from vocoder.vocabulary import STUDENT, TEACHER

log = logging.getLogger(__name__)

TEACHER_SECTIONS = ("audio", "features", "model", "speakers")
"""The config sections a student shares with its teacher: they must match the teacher file's."""


def load_teacher(name_or_path: str | Path, config: Config) -> WaveNet:
    """The frozen teacher, checked to be a teacher of the same audio, features, model and speakers as `config`.

    Built as `vocoder.load` builds a model (`build_model`): the embedded config's bounds and the shapes it implies
    are checked against the file's before anything is allocated or any weight is read."""
    path = resolve_model_path(name_or_path)
    teacher_config, kind, _ = read_model_header(path)
    if kind != TEACHER:
        raise VocoderError(f"{path}: --teacher must be a teacher model, found kind {kind!r}")
    for section in TEACHER_SECTIONS:
        if getattr(teacher_config, section) != getattr(config, section):
            raise VocoderError(f"{path}: the teacher's '{section}' section differs from the config's")
    teacher = build_model(path, teacher_config, WaveNet)
    assert isinstance(teacher, WaveNet)
    return teacher.requires_grad_(False).eval()


def class_embeddings(table: torch.Tensor, values: torch.Tensor, mu: int, pathwise: bool) -> torch.Tensor:
    """`table [classes, C]`'s rows for the mu-law ids of `values [B, T]` -> `[B, T, C]`.

    Their values are always the embeddings of the ids, the inputs the teacher was trained on. With `pathwise`, their
    gradient is that of the embedding interpolated linearly between the two classes on either side of each value's
    continuous mu-law position (straight-through)."""
    embedded = table[mu_law_encode(values.detach(), mu)]
    if pathwise:
        position = mu_law_position(values, mu)
        low = position.detach().floor().clamp(max=mu - 1).long()
        soft = torch.lerp(table[low], table[low + 1], (position - low).unsqueeze(-1))
        embedded = embedded + (soft - soft.detach())
    return embedded


def teacher_inputs(teacher: WaveNet, waveform: torch.Tensor, mu: int, pathwise: bool) -> torch.Tensor:
    """The teacher's input embeddings `[B, T, C]` for teacher-forcing on the student's sample `waveform [B, T]`: the
    shifted sample's (`class_embeddings`). With `pathwise` the cross-entropy at t reaches the student's earlier
    samples through the teacher, the pathwise part of the KL gradient, which pushes the student towards histories
    the teacher finds predictable (voiced periods) and which discrete inputs would drop. An LPC teacher's second
    input is added by `prediction_inputs`."""
    table = teacher.embedding.weight
    embedded = class_embeddings(table, waveform, mu, pathwise)
    start = table[teacher.start_id].expand(embedded.shape[0], 1, -1)
    return torch.cat([start, embedded[:, :-1]], dim=1)


def prediction_inputs(teacher: WaveNet, prediction: torch.Tensor, mu: int, pathwise: bool) -> torch.Tensor:
    """An LPC teacher's second input `[B, T, C]`: the embeddings of the class ids of `prediction [B, T]` (p_t, not
    shifted: it is a function of the samples before t), added to `teacher_inputs` as `WaveNet.forward` adds them.
    With `pathwise`, relaxed as the signal's embedding is, so the gradient also reaches `x_<t` through p_t's class."""
    if teacher.prediction_embedding is None:
        raise ValueError("this teacher has no linear prediction (model.lpc_order is 0); it reads no prediction")
    return class_embeddings(teacher.prediction_embedding.weight, prediction, mu, pathwise)


class DistillTrainer(Trainer):
    """Trains a `StudentWaveNet` (the config's `student` section) against a frozen teacher."""

    model_kind = STUDENT
    frozen_sections = (*Trainer.frozen_sections, "student")

    def __init__(
        self,
        teacher: str | Path,
        config: Config,
        data_dir: Path | list[Path],
        run_dir: Path,
        device: str | None = None,
        resume: bool = False,
        max_steps: int | None = None,
        init: str | Path | None = None,
        restart: bool = False,
        resume_from: Path | None = None,
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
        self.teacher_identity = file_identity(teacher_path)
        self.edges = mu_law_bin_edges(config.audio.mu)
        self.adversary: Adversary | None = None
        super().__init__(config, data_dir, run_dir, device, resume, max_steps, init, restart, resume_from)
        if self.adversary is not None:
            self.adversary.distribute(self.dist)
            log.info(
                "discriminator: periods %s, %d parameters, joins at step %d",
                self.config.student.discriminator.periods,
                self.adversary.discriminator.parameter_count(),
                self.adversary.start_step,
            )

    def run_metadata(self) -> dict[str, Any]:
        return {**super().run_metadata(), "teacher": self.teacher_identity}

    def _restore(self, state: dict[str, Any]) -> None:
        """Resume only against the teacher the checkpoint was distilled from, wherever the file is: the same bytes,
        or the same weights and recipe (a copy bundled with another default sampling)."""
        saved = state.get("run", {}).get("teacher")
        current = self.teacher_identity
        same_weights = saved is not None and saved.get("weights_sha256") == current["weights_sha256"]
        if saved is not None and saved["sha256"] != current["sha256"] and not same_weights:
            raise VocoderError(
                f"--resume: the checkpoints in {self.store.directory} were distilled from the teacher "
                f"{saved['file']} (sha256 {saved['sha256'][:12]}), not from {self.teacher_identity['file']} "
                f"(sha256 {self.teacher_identity['sha256'][:12]}); pass that teacher or use another --out"
            )
        super()._restore(state)
        if self.adversary is not None:
            self.adversary.load_state_dict(state, f"{self.store.directory} (training state)")

    def auxiliary_state(self) -> dict[str, Any]:
        return {} if self.adversary is None else self.adversary.state_dict()

    def load_initial_weights(self, weights: dict[str, torch.Tensor], source: Path) -> None:
        """`--init` may grow a student: flows beyond the file's (appended after its own, which must match) start as
        the identity, and a student without a harmonic source may start one with it, the gated layers' projections
        of the source channels at zero; either way training starts from the file's student exactly and the new
        parts learn what it lacks."""
        kept = len({key.split(".")[1] for key in weights if key.startswith("flows.")})
        grown = list(self.model.flows)[kept:]
        current = self.model.state_dict()
        added = self.model.source_channels
        narrow = [key for key in weights if key.endswith(".local.weight") and key in current]
        narrow = [key for key in narrow if added and weights[key].shape[1] + added == current[key].shape[1]]
        for key in narrow:  # the file's student reads no source: its gated layers see the source through zeros
            weights = weights | {key: torch.cat([weights[key], weights[key].new_zeros(len(weights[key]), added, 1)], 1)}
        if narrow:
            log.info("%s: %d gated layers start reading the harmonic source through zero weights", source, len(narrow))
        appended = {key: current[key] for key in current if key.startswith("flows.") and int(key.split(".")[1]) >= kept}
        load_weights(self.model, {**weights, **appended}, source)
        for flow in grown:
            flow.start_as_identity()
        if grown:
            log.info("%s: %d flows appended to its %d, starting as the identity", source, len(grown), kept)

    def build_model(self) -> torch.nn.Module:
        """The student; the teacher and the bin edges move to the training device with it, and the discriminator
        is built there when the config trains one."""
        self.teacher.to(self.dist.device)
        self.edges = self.edges.to(self.dist.device)
        student = StudentWaveNet(self.config)
        if self.config.student.adversarial:
            self.adversary = Adversary(self.config.student, self.dist.device)
        return student

    def context_receptive_field(self) -> int:
        """The teacher scores every loss sample over its full receptive field of the student's output, and each
        flow sees a full receptive field of its input."""
        return max(self.teacher.receptive_field, self.model.flow_receptive_field)

    def student_sample(self, network: torch.nn.Module, batch: Batch) -> StudentOutput:
        """The student's sample of the batch's segments, from fresh logistic noise; a harmonic source starts at a
        random phase per segment (a segment starts anywhere in its utterance, so no phase is the right one)."""
        core = network.module if isinstance(network, DistributedDataParallel) else network
        local = core.upsample(batch.frames)[:, :, self.margin_samples : -self.margin_samples]
        z = logistic_noise(torch.rand(batch.targets.shape, device=local.device, dtype=local.dtype))
        if core.source_channels:
            margin = self.sampler.margin
            phase = torch.rand(z.shape[0], device=z.device, dtype=torch.float64) * (2 * math.pi)
            local = core.with_source(local, batch.f0[:, margin:-margin], phase)
        return network(z, local, batch.speaker_ids)

    def compute_loss(self, network: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective; once the discriminator has joined, it takes its step here, on this sample."""
        output = self.student_sample(network, batch)
        total, parts = self.objective(output, batch)
        if self.adversary is not None and self.adversary.active(self.step):
            generated, real = self.adversarial_signals(output.waveform, batch)
            with torch.autocast(self.dist.device.type, enabled=False):
                parts |= self.adversary.train_discriminator(generated, real)
                term, adversarial_parts = self.adversary.student_loss(generated, real)
            total = total + term
            parts |= adversarial_parts
        return total, parts

    def adversarial_signals(self, waveform: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(generated, real) `[B, loss samples]` float32 for the discriminator, zero where the mask is.

        Both in the model's signal domain: the student's sample, and the real segment (its mu-law ids, pre-emphasised
        audio when `audio.preemphasis` is set) spread uniformly over each id's bin, the density the KL gives the
        teacher. The mu-law decoded values alone sit on 256 levels that no student sample does, a difference a
        discriminator could learn instead of the sound."""
        samples = self.config.train.segment_frames * self.config.features.hop_length
        mask = batch.mask[:, -samples:]
        ids = batch.signal_ids[:, -samples:]
        low, high = self.edges[ids], self.edges[ids + 1]
        within = torch.rand(ids.shape, device=ids.device, dtype=low.dtype)
        real = (low + within * (high - low)).float() * mask
        return waveform[:, -samples:].float() * mask, real

    def teacher_lpc(self, frames: torch.Tensor, steps: int) -> torch.Tensor | None:
        """An LPC teacher's predictor for each of the segment's `steps` samples, `[B, steps, order]`, from the
        batch's frames without their margins, as its training data computes them (None without LPC)."""
        margin = self.sampler.margin
        coefficients = self.teacher.lpc(frames[:, margin:-margin])
        if coefficients is None:
            return None
        return sample_coefficients(coefficients, self.config.features.hop_length, steps)

    def teacher_scores(
        self,
        embedded: torch.Tensor,
        signal: torch.Tensor,
        local: torch.Tensor,
        lpc: torch.Tensor | None,
        speaker_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The teacher's float32 logits `[B, classes, T]` for the student's sample `signal [B, T]` (its input
        embeddings `embedded`) under the upsampled conditioning `local`, and an LPC teacher's prediction p_t `[B, T]`
        from the signal's own past (clipped to [-1, 1], as every generator's history is) with the per-sample
        predictor `lpc`; None without LPC. p_t keeps its gradient: it is a differentiable function of x_<t, and the
        KL's exact gradient includes the path through it."""
        prediction = None
        if lpc is not None:
            prediction = predict_samples(lpc, signal.clamp(-1.0, 1.0))
            pathwise = self.config.student.pathwise_gradient
            embedded = embedded + prediction_inputs(self.teacher, prediction, self.config.audio.mu, pathwise)
        return self.teacher.forward_embedded(embedded, local, speaker_ids).float(), prediction

    def objective(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted distillation loss of one student sample, and its parts (in nats per sample for KL)."""
        student = self.config.student
        mu = self.config.audio.mu
        signal = output.waveform.float()
        with torch.no_grad():
            local = self.teacher.upsample(batch.frames)[:, :, self.margin_samples : -self.margin_samples]
            lpc = self.teacher_lpc(batch.frames, signal.shape[-1])
        embedded = teacher_inputs(self.teacher, signal, mu, student.pathwise_gradient)
        logits, prediction = self.teacher_scores(embedded, signal, local, lpc, batch.speaker_ids)
        wrong = None
        if student.contrastive_weight > 0:  # the same sample scored under other phones, which it should not fit
            shift = local.shape[-1] // 2
            wrong_lpc = None if lpc is None else lpc.roll(shift, dims=1)
            wrong = self.teacher_scores(embedded, signal, local.roll(shift, dims=-1), wrong_lpc, batch.speaker_ids)
        with torch.autocast(self.dist.device.type, enabled=False):  # CDFs, logs and STFTs in float32 under AMP
            location, log_scale = output.location.float(), output.log_scale.float()
            mask = batch.mask
            count = mask.sum().clamp(min=1)

            def masked_mean(values: torch.Tensor) -> torch.Tensor:
                return (values * mask).sum() / count

            kl, cross_entropy = map(
                masked_mean, density_distillation(location, log_scale, logits, self.edges, prediction)
            )
            contrast = None
            if wrong is not None:
                wrong_logits, wrong_prediction = wrong
                contrast = masked_mean(
                    density_distillation(location, log_scale, wrong_logits, self.edges, wrong_prediction)[0]
                )
            generated = signal * mask
            reference = mu_law_decode(batch.signal_ids, mu) * mask
            power = power_loss(generated, reference, student.stft_resolutions[0])
            stft = multi_resolution_stft_loss(generated, reference, student.stft_resolutions)
        total = student.kl_weight * kl + student.power_weight * power + student.stft_weight * stft
        parts = {
            "kl": kl.item(),
            "cross_entropy": cross_entropy.item(),
            "entropy": masked_mean(student_entropy(log_scale)).item(),
            "power": power.item(),
            "stft": stft.item(),
        }
        if contrast is not None:
            total = total - student.contrastive_weight * contrast
            parts["contrastive_kl"] = contrast.item()
        return total, parts

    def validation_loss(self, batch: Batch) -> float:
        """The loss under the same noise at every validation, so validation losses compare across steps; without
        the adversarial terms, which depend on a discriminator that changes from step to step."""
        devices = [self.dist.device] if self.dist.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.train.seed)
            return self.objective(self.student_sample(self.ema, batch), batch)[0].item()

    def synthesize_sample(
        self, conditioning: torch.Tensor, speaker: torch.Tensor | None, f0: torch.Tensor | None
    ) -> np.ndarray:
        local = self.ema.with_source(self.ema.upsample(conditioning), f0, None)
        uniforms = Sampling(seed=0).uniforms(1, local.shape[-1])
        return self.ema.generate(local, speaker, uniforms)[0].cpu().numpy()
