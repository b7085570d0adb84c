"""The Python API that the CLI, the server and users share: load a model, turn feature files into waveforms."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocoder.audio import Deemphasis, deemphasize, mu_law_encode
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.featurefile import FeatureFileError, Features, read_features, validate_features
from vocoder.features.level import InputLevels, scaled
from vocoder.generate import (
    FastWaveNet,
    GenerationResult,
    ProgressCallback,
    Sampling,
    StepTemperatures,
    fast_generator,
    generate_naive,
    student_generator,
)
from vocoder.models.checkpoint import build_model, read_model_header, resolve_model_path
from vocoder.models.conditioning import Conditioning
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.vocabulary import (
    KIND_METHODS,
    STUDENT,
    TEACHER,
    Backend,
    Method,
    ModelKind,
    Precision,
    Strategy,
    check_backend,
    check_precision,
)

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device`, or the default one; asking for a GPU that is not there is bad input, not a traceback."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise VocoderError(f"device: expected cpu or cuda, found {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise VocoderError(f"device {device!r}: no CUDA GPU is available on this machine; use cpu")
    return resolved


class Vocoder:
    """A loaded teacher WaveNet (or Parallel WaveNet student) and everything needed to synthesize from feature files."""

    def __init__(
        self,
        model: WaveNet | StudentWaveNet,
        name: str,
        metadata: dict[str, Any] | None = None,
        kind: ModelKind = TEACHER,
        precision: Precision = "fp32",
        backend: Backend = "auto",
    ) -> None:
        self.model = model.eval()
        self.name = name
        self.metadata = metadata or {}
        self.kind = kind
        self._fast = fast_generator(self.model, backend, precision) if kind == TEACHER else None
        # The fused kernel and the CUDA graphs keep the plain PyTorch loop as their fallback, the Triton kernel the
        # CUDA graphs: fast-torch is the loop at the end of that chain.
        fast_torch = self._fast
        while fast_torch is not None and not isinstance(fast_torch, FastWaveNet):
            fast_torch = fast_torch.fallback  # type: ignore[attr-defined]
        self._fast_torch: FastWaveNet | None = fast_torch
        self._student = student_generator(self.model, backend) if kind == STUDENT else None
        # What unset sampling settings mean: the `sampling` section (its card's measured best), replaceable (e.g.
        # to compare samplings of one model); a student reads only its temperatures (its noise's scale).
        self.default_sampling = Sampling.recommended(self.config.sampling)
        # The band of mel levels it was trained on, which synthesis keeps an utterance in (None: features as given).
        self.input_levels = InputLevels.from_metadata(self.metadata)

    @property
    def config(self) -> Config:
        return self.model.config

    @property
    def default_method(self) -> Method:
        """`fast` for a teacher, `student` for a student: what `method=None` means."""
        return KIND_METHODS[self.kind][0]  # type: ignore[return-value]

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sample_rate

    def sampling(
        self,
        strategy: Strategy | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        voiced_temperature: float | None = None,
    ) -> Sampling:
        """The model's default sampling with the given settings in place of its own, field by field (`None`: the
        model's). top_p 1 or top_k at the class count turn the model's truncation off."""
        given = {
            "strategy": strategy,
            "temperature": temperature,
            "voiced_temperature": voiced_temperature,
            "top_k": top_k,
            "top_p": top_p,
            "seed": seed,
        }
        return replace(self.default_sampling, **{name: value for name, value in given.items() if value is not None})

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def ignored_settings(
        self, sampling: Sampling, features: list[Features] | None = None
    ) -> tuple[tuple[str, ...], str]:
        """The settings of `sampling` (not at their defaults) that make no difference with this model, and why;
        the CLI prints them in a note and the service names them in a header, rather than accept them silently.
        With the `features` to synthesize: a voiced temperature (the model's own too) where none of them says
        which frames are voiced."""
        if self.kind == STUDENT and (unused := sampling.unused_by_student(self.default_sampling)):
            reason = "a student draws the whole waveform in one pass from noise that only the seed and temperatures set"
            return unused, reason
        tied = sampling.voiced_temperature is not None and (self.kind == STUDENT or sampling.strategy != "argmax")
        if tied and features and all(item.vuv is None for item in features):
            reason = f"the features carry no vuv (which frames are voiced): `vocoder extract --model {self.name}`"
            return ("voiced_temperature",), f"{reason} writes it"
        if self.kind == STUDENT:
            return (), ""
        reason = "argmax takes the most likely class of the unshaped distribution"
        return sampling.unused_by_strategy(self.default_sampling), reason

    def features(self, features: Features | str | Path, speaker: str | None = None) -> Features:
        """Read (if a path) and validate features against this model; `speaker` overrides the file's."""
        loaded = features if isinstance(features, Features) else read_features(features)
        if speaker is not None:
            if not self.config.speakers:  # a file's own speaker is kept as a label; a requested one would be ignored
                raise FeatureFileError(loaded.source, "speaker", f"none: {self.name} has no speakers", repr(speaker))
            loaded = loaded.with_speaker(speaker)
        validate_features(loaded, self.config, model=self.name)
        return loaded

    def synthesize(
        self,
        features: Features | str | Path,
        method: Method | None = None,
        strategy: Strategy | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        speaker: str | None = None,
        progress: ProgressCallback | None = None,
        voiced_temperature: float | None = None,
    ) -> np.ndarray:
        """One utterance -> float32 waveform of `frames * hop` samples at `self.sample_rate`; sampling settings
        left `None` take the model's defaults (`default_sampling`). Not clipped: a de-emphasised output can pass
        full scale, and every writer clips it (`vocoder.audio.full_scale`)."""
        sampling = self.sampling(strategy, temperature, top_k, top_p, seed, voiced_temperature)
        return self.synthesize_batch([features], method, sampling, speaker, progress)[0]

    def synthesize_batch(
        self,
        features: list[Features | str | Path],
        method: Method | None = None,
        sampling: Sampling | None = None,
        speaker: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[np.ndarray]:
        """Several utterances generated together (padded to the longest, then trimmed back); `sampling` `None`:
        the model's default (build one from it with `self.sampling(...)`)."""
        method = method or self.default_method
        if method not in KIND_METHODS[self.kind]:
            raise VocoderError(
                f"method: a {self.kind} model takes one of {list(KIND_METHODS[self.kind])}, found {method!r}"
            )
        if not features:
            return []
        sampling = sampling or self.default_sampling
        loaded = [self.features(item, speaker) for item in features]
        levelled, gains = zip(*(self.at_trained_level(item) for item in loaded), strict=True)
        result = self.generate(list(levelled), method, sampling, progress)
        waveforms = deemphasize(result.waveform.cpu().numpy(), self.config.audio.preemphasis)
        return [waveforms[i, : item.n_samples] / gains[i] for i, item in enumerate(loaded)]

    def at_trained_level(self, features: Features) -> tuple[Features, float]:
        """(the features of the recording scaled by g, g): synthesis conditions on the first and divides its output
        by g. g is 1 inside the band of levels the model was trained on (`vocoder.features.level`), else the
        factor that moves the utterance to the band's middle."""
        gain = 1.0 if self.input_levels is None else self.input_levels.gain(features)
        if gain == 1.0:
            return features, gain
        log.info(
            "%s: its mel level lies outside the %.1f to %.1f dB %s was trained on: conditioned %+.1f dB from there, "
            "the output scaled back",
            features.source, self.input_levels.low, self.input_levels.high, self.name, 20 * math.log10(gain),
        )  # fmt: skip
        return scaled(features, gain, self.config.features.log_floor), gain

    @torch.inference_mode()
    def generate(
        self,
        features: list[Features],
        method: Method,
        sampling: Sampling,
        progress: ProgressCallback | None = None,
        record_logits: bool = False,
    ) -> GenerationResult:
        """The shared generation step over validated features (padded batch), in the model's signal domain
        (pre-emphasised when `audio.preemphasis` is set; the synthesize methods de-emphasise)."""
        frames = self.frames(features)
        conditioning = self.conditioning(features, frames)
        speaker_ids = self.speaker_ids(features)
        uniforms = sampling.draws(len(features), conditioning.shape[-1])  # each block drawn when reached
        temperatures = self.step_temperatures(features, sampling)
        if method == "student":
            waveform = self._student.generate(
                conditioning, speaker_ids, uniforms, progress, sampling.temperature, temperatures
            )
            return GenerationResult(waveform, mu_law_encode(waveform, self.config.audio.mu))
        lpc = self.model.predictors(frames)  # an LPC model's, computed a tile of frames at a time as well
        if method == "naive":  # the reference reads whole windows (and is capped to short utterances)
            local, draws = conditioning.whole(), uniforms.whole()
            return generate_naive(
                self.model, local, speaker_ids, sampling, draws, record_logits, progress, lpc=lpc,
                temperatures=temperatures,
            )  # fmt: skip
        generator = self._fast_torch if method == "fast-torch" else self._fast
        return generator.generate(
            conditioning, speaker_ids, sampling, uniforms, record_logits, progress, lpc, temperatures
        )

    def synthesize_stream(
        self,
        features: Features | str | Path,
        sampling: Sampling | None = None,
        speaker: str | None = None,
        chunk_samples: int = 1024,
    ) -> Iterator[np.ndarray]:
        """One utterance with the fast generator, yielded in float32 chunks of at most `chunk_samples` as they
        are generated, so a listener can start before the end."""
        loaded = self.features(features, speaker)
        loaded, gain = self.at_trained_level(loaded)
        sampling = sampling or self.default_sampling
        frames = self.frames([loaded])
        conditioning = self.conditioning([loaded], frames)
        uniforms = sampling.draws(1, conditioning.shape[-1])
        speaker_ids = self.speaker_ids([loaded])
        deemphasis = Deemphasis(self.config.audio.preemphasis)
        temperatures = self.step_temperatures([loaded], sampling)
        if self._student is not None:  # the student's chunks, recut to `chunk_samples`
            pending = np.empty(0, np.float32)
            chunks = self._student.stream(
                conditioning, speaker_ids, uniforms, temperature=sampling.temperature, temperatures=temperatures
            )
            for _, chunk in chunks:
                pending = np.concatenate([pending, deemphasis(chunk[0].cpu().numpy()) / gain])
                whole_chunks = len(pending) // chunk_samples * chunk_samples
                yield from (pending[start : start + chunk_samples] for start in range(0, whole_chunks, chunk_samples))
                pending = pending[whole_chunks:]
            if len(pending):
                yield pending
            return
        result = self._fast.allocate(conditioning)
        lpc = self.model.predictors(frames)
        blocks = self._fast.stream(
            conditioning, speaker_ids, sampling, uniforms, result, chunk_samples, lpc, temperatures
        )
        for start, stop in blocks:
            yield deemphasis(result.waveform[0, start:stop].cpu().numpy()) / gain

    def frames(self, features: list[Features]) -> torch.Tensor:
        """`[B, frames, C]` frame-rate conditioning of a batch, each utterance padded to the longest by repeating
        its last frame (as the upsampler extends every edge: zeros would end the shorter ones in a click)."""
        matrices = [item.conditioning(self.config) for item in features]
        longest = max(len(matrix) for matrix in matrices)
        padded = np.stack([np.pad(matrix, ((0, longest - len(matrix)), (0, 0)), mode="edge") for matrix in matrices])
        return torch.from_numpy(padded).to(self.device)

    def local_conditioning(self, features: list[Features]) -> Conditioning:
        """`[B, C, T]` conditioning of a batch (`frames`), upsampled a block at a time as generation reaches it
        (`.whole()` for all of it)."""
        return self.conditioning(features, self.frames(features))

    def conditioning(self, features: list[Features], frames: torch.Tensor) -> Conditioning:
        """The model's conditioning of a batch from its `frames`: upsampled, and for a student with a harmonic
        source that source appended, from the files' F0 (unvoiced past each utterance's end)."""
        conditioning = self.model.conditioning(frames)
        if not self.config.reads_f0 or self.kind != STUDENT:
            return conditioning
        f0 = np.zeros((len(features), frames.shape[1]), np.float32)
        for row, item in enumerate(features):
            f0[row, : item.n_frames] = item.f0_hz()
        return self.model.source_conditioning(conditioning, torch.from_numpy(f0).to(self.device))

    def step_temperatures(self, features: list[Features], sampling: Sampling) -> StepTemperatures | None:
        """A voicing-tied sampling's per-step temperatures for a batch, from the files' `vuv` (a file without one,
        and the padding past each utterance's end, count as unvoiced: `temperature` throughout); None where the
        sampling ties nothing to voicing or no file says which frames are voiced."""
        if sampling.voiced_temperature is None or all(item.vuv is None for item in features):
            return None
        voicing = torch.zeros(len(features), max(item.n_frames for item in features))
        for row, item in enumerate(features):
            if item.vuv is not None:
                voicing[row, : item.n_frames] = torch.from_numpy(item.vuv)
        return sampling.step_temperatures(voicing, self.config.features.hop_length)

    def speaker_ids(self, features: list[Features]) -> torch.Tensor | None:
        if not self.config.speakers:
            return None
        ids = [self.config.speaker_id(item.speaker) for item in features]  # validated already
        return torch.tensor(ids, dtype=torch.long, device=self.device)


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    backend: Backend = "auto",
) -> Vocoder:
    """Load a model by bundled name (`teacher`, ...) or path; it rebuilds from the file alone. `precision` is the
    fused CPU kernel's weight precision for a teacher's fast path: fp32 picks the naive reference's samples
    exactly, fp16 and int8 are faster within a stated tolerance (`vocoder.generate.cpu_kernel`). `backend` runs
    the fast path (a student's synthesis) on `cpu-kernel`, `cuda-graph`, `triton` or `torch`; `auto` picks the
    fastest that can run (`vocoder.generate.backends`)."""
    check_precision(precision)  # before reading the file, for students too
    check_backend(backend)
    target = resolve_device(device)
    path = resolve_model_path(name_or_path)
    config, kind, metadata = read_model_header(path)
    if kind not in KIND_METHODS:
        raise VocoderError(f"{path}: model kind {kind!r} is not supported here (expected one of {list(KIND_METHODS)})")
    model = build_model(path, config, WaveNet if kind == TEACHER else StudentWaveNet)
    model.to(target)
    name = path.parent.name if path.name == "model.safetensors" else path.stem
    return Vocoder(model, name, metadata, kind, precision, backend)
