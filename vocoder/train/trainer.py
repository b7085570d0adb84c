"""Teacher training: cross-entropy over mu-law classes on random segments, AdamW with warm-up and cosine decay,
gradient clipping, an EMA of the weights (what gets synthesized with), autocast on CUDA, TensorBoard logs,
validation loss and audio, atomic resumable checkpoints, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import pyplot as plt
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from vocoder.audio import deemphasize, save_wav
from vocoder.config import Config, config_from_dict
from vocoder.errors import VocoderError
from vocoder.eval.plots import spectrogram_comparison
from vocoder.generate import FastWaveNet, Sampling
from vocoder.losses.teacher import masked_cross_entropy
from vocoder.models.checkpoint import file_identity, load_weights, read_model_file, resolve_model_path, save_model
from vocoder.models.wavenet import PREDICTION_WEIGHT, WaveNet
from vocoder.train.checkpoints import CheckpointStore, is_better_export, is_newer_export, load_training_state
from vocoder.train.data import Batch, SegmentSampler, TrainingCorpus, TrainingDataError
from vocoder.train.distributed import DistributedContext, autocast_dtype
from vocoder.vocabulary import TEACHER, ModelKind

log = logging.getLogger(__name__)

PRENET_WEIGHT = "upsampler.prenet.weight"
"""The first weight to read the conditioning arrays, in teacher and student alike (`ConditioningUpsampler`)."""


@dataclass(frozen=True)
class TrainSummary:
    step: int
    train_loss: float
    valid_loss: float | None
    wall_seconds: float
    model_path: Path


def learning_rate_factor(step: int, config: Config) -> float:
    """Linear warm-up to 1, then cosine decay to min/max learning rate at max_steps."""
    train = config.train
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    span = max(1, train.max_steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    floor = train.min_learning_rate / train.learning_rate
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    """The training loop shared by the teacher and the student (`vocoder.train.distill`); subclasses override the
    hooks below (model, loss, validation loss, sample synthesis) and keep the loop, checkpoints, EMA and DDP."""

    model_kind: ModelKind = TEACHER
    frozen_sections: tuple[str, ...] = ("audio", "features", "model", "speakers")

    def __init__(
        self,
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
        if sum((resume, init is not None, resume_from is not None)) > 1:
            raise VocoderError(
                "--init starts a new run from a model's weights, --resume continues the run in --out and "
                "--resume-from continues a saved training state in a new --out: pass one"
            )
        self.dist = DistributedContext.from_environment(device)
        self.run_dir = run_dir
        self.store = CheckpointStore(run_dir, config.train.keep_last)
        if resume_from is None:
            state = self.store.open_run(resume, restart, self.dist.is_main)
        elif self.store.saved_steps():
            raise VocoderError(f"{run_dir}: holds checkpoints already; --resume-from starts a new --out")
        else:
            state = load_training_state(resume_from)
        if state is not None:
            config = self._reconcile(config, state)
        self.config = config
        self.max_steps = max_steps if max_steps is not None else config.train.max_steps
        torch.manual_seed(config.train.seed + self.dist.rank)

        self.corpus = TrainingCorpus(data_dir, config, "train")
        self.input_levels = self.corpus.input_levels()  # recorded in every model file: synthesis keeps to them
        self.valid_corpus = self._validation_corpus(data_dir)
        self.model = self.build_model().to(self.dist.device)
        self.initialised_from = None if init is None else self._initialise(init)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.sampler = SegmentSampler.for_model(self.corpus, self.context_receptive_field(), augment=True)
        self.margin_samples = self.sampler.margin * config.features.hop_length
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.train.learning_rate,
            betas=config.train.betas,
            weight_decay=config.train.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: learning_rate_factor(s, config))
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.index_sampler = DistributedSampler(
            range(len(self.corpus)), self.dist.world_size, self.dist.rank, shuffle=True, seed=config.train.seed
        )
        self.data_generator = torch.Generator().manual_seed(config.train.seed * 1_000_003 + self.dist.rank)
        self.step, self.epoch, self.position = 0, 0, 0
        self.best_valid_loss = math.inf
        self.wall_seconds = 0.0
        if state is not None:
            self._restore(state)
        self.network: torch.nn.Module = (
            DistributedDataParallel(
                self.model, device_ids=[self.dist.device] if self.dist.device.type == "cuda" else None
            )
            if self.dist.enabled
            else self.model
        )
        self.writer = SummaryWriter(str(run_dir / "tensorboard")) if self.dist.is_main else None

    # --- hooks ----------------------------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        return WaveNet(self.config)

    def context_receptive_field(self) -> int:
        """Samples of history every loss sample needs: segments carry this much context before the loss."""
        return self.model.receptive_field

    def compute_loss(self, network: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective on one batch, and named parts of it to log."""
        return masked_cross_entropy(network, batch, self.margin_samples), {}

    def validation_loss(self, batch: Batch) -> float:
        return self.compute_loss(self.ema, batch)[0].item()

    def load_initial_weights(self, weights: dict[str, torch.Tensor], source: Path) -> None:
        """`--init`: the model takes the file's weights; every name and shape must match, except that a model
        without linear prediction may start an LPC one: its prediction embedding then starts at zero, so step 0 is
        the old network reading the new excitation target."""
        if self.model.prediction_embedding is not None and PREDICTION_WEIGHT not in weights:
            weights = weights | {PREDICTION_WEIGHT: torch.zeros_like(self.model.prediction_embedding.weight)}
            log.info("%s has no linear prediction: the LPC prediction embedding starts at zero", source)
        load_weights(self.model, weights, source)

    def run_metadata(self) -> dict[str, Any]:
        """Facts about the run recorded in every checkpoint and exported model file (a student names its teacher):
        where it started, and the band of input levels it trains on (`vocoder.features.level`)."""
        metadata = {} if self.input_levels is None else self.input_levels.to_metadata()
        if self.initialised_from is not None:
            metadata["initialised_from"] = self.initialised_from
        return metadata

    def auxiliary_state(self) -> dict[str, Any]:
        """Training state kept beside the model's in every checkpoint (a student's discriminator and its optimizer);
        a subclass restores it in `_restore`."""
        return {}

    def synthesize_sample(
        self, conditioning: torch.Tensor, speaker: torch.Tensor | None, f0: torch.Tensor | None
    ) -> np.ndarray:
        """The EMA model's waveform, in its signal domain, for frame-rate `conditioning [1, frames, C]` (the
        validation utterance) and its frame F0 `[1, frames]` where the config reads F0 (a teacher reads none)."""
        local = self.ema.upsample(conditioning)
        sampling = Sampling.recommended(self.config.sampling, seed=0)  # as the exported model will sample
        uniforms = sampling.uniforms(1, local.shape[-1])
        result = FastWaveNet(self.ema).generate(local, speaker, sampling, uniforms, lpc=self.ema.lpc(conditioning))
        return result.waveform[0].cpu().numpy()

    # --- set-up -------------------------------------------------------------------------------------------------
    def _reconcile(self, config: Config, state: dict[str, Any]) -> Config:
        """Resume with the checkpoint's model; only the `train` section may change between runs."""
        saved = config_from_dict(state["config"], f"{self.store.directory} (checkpoint config)")
        for section in self.frozen_sections:
            if getattr(saved, section) != getattr(config, section):
                raise VocoderError(
                    f"--resume: the config's '{section}' differs from the checkpoint's in {self.store.directory}; "
                    "only the 'train' section may change between runs"
                )
        return config

    def _initialise(self, name_or_path: str | Path) -> dict[str, str]:
        """Fine-tuning: start from an exported model's weights (same kind and shapes; the optimizer, schedule and
        EMA start afresh). Returns the model file's identity, which the run records."""
        path = resolve_model_path(name_or_path)
        weights, saved, kind, _ = read_model_file(path)
        if kind != self.model_kind:
            raise VocoderError(f"{path}: --init must be a {self.model_kind} model, found kind {kind!r}")
        self.load_initial_weights(self._widen_conditioning(weights, saved, path), path)
        log.info("initialised from %s", path)
        return file_identity(path)

    def _widen_conditioning(
        self, weights: dict[str, torch.Tensor], saved: Config, source: Path
    ) -> dict[str, torch.Tensor]:
        """`--init` from a model that reads fewer conditioning arrays, the file's first among the config's (e.g.
        `[mel]` -> `[mel, lf0, vuv]`): the prenet reads the new arrays through zero weights, so step 0 is the file's
        model and training learns what they add. Everything after the prenet keeps its width, so the config must
        keep the file's upsampled width (`model.conditioning_channels` for a teacher)."""
        old, new = saved.features.conditioning, self.config.features.conditioning
        prenet = weights.get(PRENET_WEIGHT)
        if old == new or new[: len(old)] != old or prenet is None:
            return weights
        width = self.model.upsampler.prenet.out_channels
        if prenet.shape[0] != width:
            raise VocoderError(
                f"{source}: --init from a model conditioned on {old} into one on {new} keeps the file's "
                f"upsampled conditioning width, {prenet.shape[0]}, but this config's is {width} (set "
                f"model.conditioning_channels: {prenet.shape[0]} for a teacher)"
            )
        added = self.config.features.dim - saved.features.dim
        log.info("%s reads %s: the prenet reads the added %s through zero weights", source, old, new[len(old) :])
        return weights | {PRENET_WEIGHT: torch.cat([prenet, prenet.new_zeros(width, added, prenet.shape[2])], 1)}

    def _validation_corpus(self, data_dir: Path | list[Path]) -> TrainingCorpus:
        try:
            return TrainingCorpus(data_dir, self.config, "valid")
        except TrainingDataError as error:
            log.warning("%s; validating on fixed training segments instead", error)
            return self.corpus

    def _amp_dtype(self) -> torch.dtype | None:
        return autocast_dtype(self.dist.device, self.config.train.amp)

    def _restore(self, state: dict[str, Any]) -> None:
        self.initialised_from = state.get("run", {}).get("initialised_from")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.best_valid_loss = state["best_valid_loss"]
        self.wall_seconds = state["wall_seconds"]
        torch.set_rng_state(state["rng"]["torch"])
        self.data_generator.set_state(state["rng"]["data"][self.dist.rank])
        if self.dist.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        log.info("resumed from step %d", self.step)

    # --- the loop -----------------------------------------------------------------------------------------------
    def _next_indices(self, count: int) -> list[int]:
        """The next `count` utterances of this process's shard, epoch after epoch (resumable by position)."""
        indices: list[int] = []
        while len(indices) < count:
            self.index_sampler.set_epoch(self.epoch)
            order = list(self.index_sampler)
            take = order[self.position : self.position + count - len(indices)]
            indices.extend(take)
            self.position += len(take)
            if self.position >= len(order):
                self.epoch, self.position = self.epoch + 1, 0
        return indices

    def _train_step(self) -> tuple[float, float, int, dict[str, float]]:
        batch = self.sampler.batch(self._next_indices(self.config.train.batch_size), self.data_generator)
        batch = batch.to(self.dist.device)
        self.model.train()
        with torch.autocast(self.dist.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, parts = self.compute_loss(self.network, batch)
        if not torch.isfinite(loss):
            raise VocoderError(
                f"the training loss became {loss.item()} at step {self.step}; lower the learning rate and resume "
                f"from the last checkpoint in {self.store.directory}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_ema()
        return loss.item(), float(grad_norm), batch.targets.numel(), parts

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.train.ema_decay, (1 + self.step) / (10 + self.step))  # fast at the start
        ema_params = list(self.ema.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in self.model.parameters()], 1 - decay)

    def run(self, time_limit: float | None = None) -> TrainSummary:
        """Train to `max_steps`, or, with a `time_limit` (seconds of this call), to the first step past it, which
        validates and checkpoints like the last step: a run under a wall-clock budget ends on a checkpoint and an
        export of the same step, with no work thrown away."""
        train = self.config.train
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not self.dist.is_main, unit="step")
        loss, samples, started = math.nan, 0, time.perf_counter()
        deadline = None if time_limit is None else started + time_limit
        out_of_time = False
        valid_loss: float | None = None
        if self.dist.is_main:
            log.info(
                "training %s: %d train utterances (%.1f s), receptive field %d samples, %d parameters, device %s x%d",
                self.config.name,
                len(self.corpus),
                self.corpus.total_seconds,
                self.model.receptive_field,
                self.model.parameter_count(),
                self.dist.device,
                self.dist.world_size,
            )
        try:
            while self.step < self.max_steps and not out_of_time:
                loss, grad_norm, batch_samples, parts = self._train_step()
                self.step += 1
                samples += batch_samples
                bar.update(1)
                if deadline is not None:  # every process decides alike: one past the deadline stops them all here
                    out_of_time = self.dist.mean(float(time.perf_counter() > deadline)) > 0
                last = self.step == self.max_steps or out_of_time
                if self.step % train.log_every == 0 or last:
                    elapsed = time.perf_counter() - started
                    rate = samples / elapsed * self.dist.world_size
                    self.wall_seconds += elapsed
                    samples, started = 0, time.perf_counter()
                    loss = self.dist.mean(loss)
                    bar.set_postfix(loss=f"{loss:.3f}", samples_per_s=f"{rate:,.0f}")
                    self._scalars(
                        loss=loss,
                        learning_rate=self.scheduler.get_last_lr()[0],
                        grad_norm=grad_norm,
                        samples_per_s=rate,
                        **parts,
                    )
                if self.step % train.valid_every == 0 or last:
                    valid_loss = self._validate()
                if self.step % train.checkpoint_every == 0 or last:
                    self._checkpoint(valid_loss)
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return TrainSummary(self.step, loss, valid_loss, self.wall_seconds, self.run_dir / "model")

    # --- validation, logging, checkpoints -----------------------------------------------------------------------
    def _scalars(self, **values: float) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)

    @torch.no_grad()
    def _validate(self) -> float | None:
        """EMA model: loss over fixed validation segments, and a generated validation utterance (rank 0)."""
        if not self.dist.is_main:
            self.dist.barrier()
            return None
        train = self.config.train
        sampler = SegmentSampler(self.valid_corpus, self.sampler.context, self.sampler.margin)
        batches = sampler.fixed_batches(train.valid_segments, train.batch_size, seed=train.seed)
        losses = [self.validation_loss(batch.to(self.dist.device)) for batch in batches]
        valid_loss = float(np.mean(losses))
        if self.writer is not None:
            self.writer.add_scalar("valid/loss", valid_loss, self.step)
        self._generate_sample()
        self.dist.barrier()
        return valid_loss

    def _generate_sample(self) -> None:
        utterance = self.valid_corpus.utterances[0]
        hop = self.config.features.hop_length
        frames = max(1, int(self.config.train.sample_seconds * self.config.audio.sample_rate) // hop)
        conditioning = torch.from_numpy(utterance.conditioning[:frames]).unsqueeze(0).to(self.dist.device)
        speaker = (
            torch.tensor([self.config.speaker_id(utterance.row.speaker)], device=self.dist.device)
            if self.config.speakers
            else None
        )
        preemphasis = self.config.audio.preemphasis
        f0 = None if utterance.f0 is None else torch.from_numpy(utterance.f0[:frames]).unsqueeze(0).to(self.dist.device)
        wav = deemphasize(self.synthesize_sample(conditioning, speaker, f0), preemphasis)
        reference = deemphasize(utterance.audio[: len(wav)], preemphasis)
        stem = self.run_dir / "samples" / f"step_{self.step:08d}"
        save_wav(stem.with_suffix(".wav"), wav, self.config.audio.sample_rate)
        image = stem.with_suffix(".png")
        spectrogram_comparison(
            [("generated", wav), ("reference", reference)],
            self.config.audio.sample_rate,
            f"{utterance.row.id} at step {self.step}",
            image,
        )
        if self.writer is not None:
            self.writer.add_audio("valid/generated", wav[None], self.step, self.config.audio.sample_rate)
            self.writer.add_image("valid/spectrogram", plt.imread(image)[..., :3], self.step, dataformats="HWC")

    def _checkpoint(self, valid_loss: float | None) -> None:
        data_rng = self._gather_data_rng()  # collective: every rank takes part
        if not self.dist.is_main:
            self.dist.barrier()
            return
        is_best = valid_loss is not None and valid_loss < self.best_valid_loss
        if is_best:
            self.best_valid_loss = valid_loss
        payload = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            **self.auxiliary_state(),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "best_valid_loss": self.best_valid_loss,
            "wall_seconds": self.wall_seconds,
            "config": self.config.model_dump(mode="json"),
            "run": self.run_metadata(),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": data_rng,
                "cuda": torch.cuda.get_rng_state(self.dist.device) if self.dist.device.type == "cuda" else None,
            },
        }
        self.store.save(payload, self.step, is_best)
        metadata = {
            "steps": self.step,
            "wall_seconds": round(self.wall_seconds, 1),
            "device": f"{self.dist.device.type} x{self.dist.world_size}",
            "valid_loss": None if valid_loss is None else round(valid_loss, 4),
            "train_utterances": len(self.corpus),
            "train_audio_seconds": round(self.corpus.total_seconds, 1),
            **self.run_metadata(),
        }
        latest, best = self.run_dir / "model" / "model.safetensors", self.run_dir / "best" / "model.safetensors"
        if is_newer_export(latest, metadata):
            save_model(latest, self.ema, self.config, self.model_kind, metadata)
        if is_best and is_better_export(best, metadata):
            save_model(best, self.ema, self.config, self.model_kind, metadata)
        self.dist.barrier()

    def _gather_data_rng(self) -> list[torch.Tensor]:
        """Every rank's data-generator state, so each resumes its own stream of segment offsets."""
        if not self.dist.enabled:
            return [self.data_generator.get_state()]
        states = [torch.empty_like(self.data_generator.get_state()) for _ in range(self.dist.world_size)]
        torch.distributed.all_gather_object(states, self.data_generator.get_state())
        return states
