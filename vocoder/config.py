"""Typed configuration loaded from YAML.

A config is data: it travels inside every checkpoint, so a model can be rebuilt from its checkpoint alone and a
feature file can be validated against the model that will read it. Unknown keys and bad values are errors that
name the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vocoder.constants import TEMPERATURE_MAX, TEMPERATURE_MIN, TOP_K_MAX
from vocoder.errors import VocoderError
from vocoder.paths import recipes_dir
from vocoder.vocabulary import F0_ARRAYS, AmpDtype, ConditioningArray

CONFIG_DIR = recipes_dir()
"""The shipped recipes: configs/ of the checkout, `vocoder/recipes/` of an installed wheel."""
SOURCE_HARMONICS_MAX = 16
"""Most harmonics of a student's harmonic source: the 16th of a 500 Hz voice is at Nyquist for 16 kHz audio."""


class ConfigError(VocoderError):
    """A config file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudioConfig(_Strict):
    sample_rate: int = Field(16000, gt=0)
    mu: int = Field(255, gt=0, description="mu-law parameter; the model predicts mu + 1 classes")
    preemphasis: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="noise shaping: the model works on s[t] - a * s[t-1] (LPCNet uses 0.85) and its output is "
        "de-emphasised, so the 8-bit quantisation noise follows the speech spectrum instead of being white; 0: off",
    )

    @property
    def classes(self) -> int:
        return self.mu + 1

    def cache_stamp(self) -> dict[str, int]:
        """What a feature cache depends on: it stores plain audio, pre-emphasis is applied when training reads it."""
        return self.model_dump(mode="json", exclude={"preemphasis"})


class FeatureConfig(_Strict):
    """How conditioning features are computed from audio and which of them a model reads."""

    conditioning: list[ConditioningArray] = Field(default_factory=lambda: ["mel"], min_length=1)
    hop_length: int = Field(200, gt=0, description="samples per feature frame")
    win_length: int = Field(800, gt=0)
    n_fft: int = Field(1024, gt=0)
    n_mels: int = Field(80, gt=0)
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = Field(None, gt=0, description="None means sample_rate / 2")
    log_floor: float = Field(1e-5, gt=0, description="mel magnitudes are clipped here before the log")
    f0_method: Literal["dio", "harvest"] = "dio"
    f0_floor: float = Field(60.0, gt=0)
    f0_ceil: float = Field(600.0, gt=0)
    linguistic_dim: int | None = Field(None, gt=0, description="required when 'linguistic' is conditioned on")
    max_frames: int = Field(8000, gt=0, description="longest feature file a model accepts")

    @field_validator("conditioning")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"conditioning lists an array twice: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeatureConfig:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if self.f0_floor >= self.f0_ceil:
            raise ValueError(f"f0_floor ({self.f0_floor}) must be below f0_ceil ({self.f0_ceil})")
        if "linguistic" in self.conditioning and self.linguistic_dim is None:
            raise ValueError("linguistic_dim is required when conditioning includes 'linguistic'")
        return self

    def array_dims(self, names: list[ConditioningArray] | None = None) -> dict[str, int]:
        """Width of each of `names`; None: the conditioning arrays, in the order the model concatenates them."""
        widths = {"mel": self.n_mels, "lf0": 1, "vuv": 1, "linguistic": self.linguistic_dim or 0}
        return {name: widths[name] for name in (self.conditioning if names is None else names)}

    @property
    def dim(self) -> int:
        return sum(self.array_dims().values())

    def columns(self, name: ConditioningArray) -> slice:
        """Where array `name` sits among the conditioning matrix's columns (it must be conditioned on)."""
        start = 0
        for array, width in self.array_dims().items():
            if array == name:
                return slice(start, start + width)
            start += width
        raise ValueError(f"'{name}' is not among the conditioning arrays {self.conditioning}")


LPC_MIN_ORDER, LPC_MAX_ORDER = 2, 32
"""Orders of the linear predictor a model may use (16 is LPCNet's at 16 kHz)."""


class ModelConfig(_Strict):
    """The teacher WaveNet's shape."""

    layers: int = Field(30, gt=0)
    cycles: int = Field(3, gt=0, description="dilations 1..2^(layers/cycles - 1), repeated this many times")
    kernel_size: int = Field(2, ge=2)
    input_kernel_size: int = Field(2, ge=1, description="kernel of the causal input convolution")
    residual_channels: int = Field(64, gt=0)
    gate_channels: int = Field(128, gt=0)
    skip_channels: int = Field(256, gt=0)
    upsample_scales: list[int] = Field(default_factory=lambda: [4, 5, 10], min_length=1)
    prenet_kernel_size: int = Field(3, ge=1, description="frame-level conv before upsampling (odd)")
    conditioning_channels: int | None = Field(
        None, gt=0, description="width of the upsampled conditioning; None keeps the features' width"
    )
    speaker_embedding_dim: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    lpc_order: int = Field(
        0,
        ge=0,
        le=LPC_MAX_ORDER,
        description="linear-prediction excitation (LPCNet): per-frame LPC of this order from the mel predicts each "
        "sample from the previous ones, the network models the mu-law residual and also reads the prediction; 0: off",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.lpc_order == 1:
            raise ValueError(f"lpc_order must be 0 (off) or {LPC_MIN_ORDER} to {LPC_MAX_ORDER}, found 1")
        if self.layers % self.cycles:
            raise ValueError(f"layers ({self.layers}) must be a multiple of cycles ({self.cycles})")
        if self.gate_channels % 2:
            raise ValueError(f"gate_channels ({self.gate_channels}) must be even: it splits into tanh and sigmoid")
        if self.prenet_kernel_size % 2 == 0:
            raise ValueError(f"prenet_kernel_size ({self.prenet_kernel_size}) must be odd")
        if any(scale < 1 for scale in self.upsample_scales):
            raise ValueError(f"upsample_scales must be positive, got {self.upsample_scales}")
        return self

    @property
    def dilations(self) -> list[int]:
        per_cycle = self.layers // self.cycles
        return [2**i for _ in range(self.cycles) for i in range(per_cycle)]


class TrainConfig(_Strict):
    """How a teacher is trained: segments, optimiser, schedule, EMA, logging and checkpoint cadence."""

    batch_size: int = Field(8, gt=0, description="segments per step (per process under DDP)")
    segment_frames: int = Field(40, gt=0, description="frames per segment that the loss is taken over")
    learning_rate: float = Field(1e-3, gt=0)
    min_learning_rate: float = Field(1e-5, ge=0, description="the cosine decay ends here at max_steps")
    warmup_steps: int = Field(500, ge=0)
    max_steps: int = Field(200_000, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0, description="maximum global gradient norm")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the weights, used for synthesis")
    amp: AmpDtype = Field("bf16", description="autocast dtype on CUDA (CPU runs fp32)")
    log_every: int = Field(25, gt=0)
    valid_every: int = Field(500, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    keep_last: int = Field(3, gt=0, description="checkpoints kept besides the best")
    valid_segments: int = Field(32, gt=0, description="fixed validation segments for the validation loss")
    sample_seconds: float = Field(1.0, gt=0, description="length of the generated validation utterance")
    seed: int = 0
    input_noise: float = Field(
        0.0,
        ge=0,
        description="noise injection (LPCNet): the teacher-forced past input gets Gaussian noise of a standard "
        "deviation drawn per segment from [0, input_noise] mu-law classes, so training sees inputs as imperfect as "
        "the model's own samples at synthesis; targets stay clean; 0: off",
    )
    gain_db: float = Field(
        0.0, ge=0, le=40, description="augmentation: random gain in [-gain_db, +gain_db] dB (audio and mel); 0: off"
    )
    tilt: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="augmentation: a random second-order pole-zero filter, coefficients in [-tilt, tilt] (LPCNet "
        "0.375), on the audio and, through its response at the band centres, on the mel; 0: off",
    )

    @property
    def augments(self) -> bool:
        return self.gain_db > 0 or self.tilt > 0

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(f"min_learning_rate ({self.min_learning_rate}) exceeds learning_rate")
        return self


class DiscriminatorConfig(_Strict):
    """The waveform discriminator of the student's adversarial term: HiFi-GAN's multi-period discriminator, small.

    Each period p views the waveform as p interleaved sequences of samples p apart and convolves along them, so it
    judges exactly what a pitch-periodic (voiced) waveform has and a whispered one lacks."""

    periods: list[int] = Field(default_factory=lambda: [2, 3, 5, 7, 11], min_length=1, description="one view each")
    channels: list[int] = Field(
        default_factory=lambda: [16, 32, 64, 128], min_length=1, description="width of each strided conv of a view"
    )
    kernel_size: int = Field(5, ge=1, description="taps along time of every conv")
    stride: int = Field(3, ge=1, description="stride along time of the strided convs")
    learning_rate: float = Field(2e-4, gt=0, description="the discriminator's own AdamW, at a constant rate")
    betas: tuple[float, float] = (0.8, 0.99)

    @field_validator("periods")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if any(period < 1 for period in value) or len(set(value)) != len(value):
            raise ValueError(f"periods must be distinct positive integers, got {value}")
        return value

    @field_validator("channels")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError(f"channels must be positive, got {value}")
        return value


class StudentConfig(_Strict):
    """The Parallel WaveNet student (a stack of IAF flows over logistic noise) and its distillation loss weights.

    Small by default: four short flows of narrow layers, sized for synthesis many times faster than real time on
    two CPU cores (docs/BENCHMARKS.md). The paper's student is four flows of 10, 10, 10 and 30 layers of 64 channels.
    """

    flows: list[int] = Field(default_factory=lambda: [4, 4, 4, 6], min_length=1, description="layers per flow")
    dilation_cycle: int = Field(10, gt=0, description="dilations 1..2^(cycle - 1), repeated within each flow")
    kernel_size: int = Field(2, ge=2)
    residual_channels: int = Field(16, gt=0)
    gate_channels: int = Field(32, gt=0)
    skip_channels: int = Field(16, gt=0)
    conditioning_channels: int = Field(24, gt=0, description="width of the student's own upsampled conditioning")
    source_harmonics: int = Field(
        0,
        ge=0,
        le=SOURCE_HARMONICS_MAX,
        description="NSF-style harmonic source appended to the flows' conditioning: vuv * sin(k phi_t) for k = 1..H "
        "and vuv, with phi_t the phase of the recording's WORLD F0 (`vocoder.models.source`); 0: off",
    )
    log_scale_min: float = Field(-9.0, description="each flow's log-scale is clipped here (finest mu-law bin ~e^-8.7)")
    initial_scale: float = Field(0.05, gt=0, description="total scale s_tot at initialisation: x starts as ~0.05 z")
    kl_weight: float = Field(1.0, ge=0, description="probability density distillation, KL(student || teacher)")
    power_weight: float = Field(1.0, ge=0, description="log power spectrum (averaged over time) vs the real audio")
    stft_weight: float = Field(1.0, ge=0, description="multi-resolution STFT loss vs the real audio")
    contrastive_weight: float = Field(
        0.0,
        ge=0,
        description="gamma of the paper's contrastive term (0.3 there): minus gamma times the KL against the teacher "
        "under the wrong conditioning (each segment's own, rotated by half its length); 0: off",
    )
    pathwise_gradient: bool = Field(
        True,
        description="differentiate the teacher's cross-entropy through its inputs too (the student's earlier samples), "
        "by a straight-through relaxation of its mu-law input embedding",
    )
    stft_resolutions: list[tuple[int, int, int]] = Field(
        default_factory=lambda: [(512, 50, 240), (1024, 120, 600), (2048, 240, 1200)],
        min_length=1,
        description="(n_fft, hop, window) of each STFT resolution; the first also gives the power loss",
    )
    adversarial_weight: float = Field(
        0.0,
        ge=0,
        description="least-squares GAN loss of the student's sample against `discriminator` (Yamamoto et al., "
        "2019); 0: off, no discriminator is built",
    )
    feature_matching_weight: float = Field(
        0.0, ge=0, description="L1 between the discriminator's features of the real and the student's audio"
    )
    adversarial_start_step: int = Field(
        0, ge=0, description="the step at which the discriminator and the adversarial terms join (a warmed-up student)"
    )
    discriminator: DiscriminatorConfig | None = Field(None, description="required when adversarial_weight > 0")

    @model_validator(mode="after")
    def _consistent(self) -> StudentConfig:
        if self.gate_channels % 2:
            raise ValueError(f"gate_channels ({self.gate_channels}) must be even: it splits into tanh and sigmoid")
        if any(layers < 1 for layers in self.flows):
            raise ValueError(f"flows must each have at least one layer, got {self.flows}")
        for n_fft, hop, window in self.stft_resolutions:
            if not 0 < hop <= window <= n_fft:
                raise ValueError(f"stft_resolutions: need 0 < hop <= window <= n_fft, got {(n_fft, hop, window)}")
        if self.adversarial and self.discriminator is None:
            raise ValueError(
                f"adversarial_weight ({self.adversarial_weight}) or feature_matching_weight "
                f"({self.feature_matching_weight}) needs student.discriminator settings (periods, channels, ...)"
            )
        return self

    @property
    def adversarial(self) -> bool:
        """Whether a discriminator trains beside the student (either of its terms weighted)."""
        return self.adversarial_weight > 0 or self.feature_matching_weight > 0

    def dilations(self, layers: int) -> list[int]:
        return [2 ** (i % self.dilation_cycle) for i in range(layers)]


class SamplingConfig(_Strict):
    """How a teacher samples unless the caller says otherwise (field by field): the setting its card measured best
    on held-out speech. A cooler or truncated excitation distribution trades a little variety for less noise, as
    LPCNet's sampling does; temperature 1 without truncation draws from the distribution as trained. It does not
    change the weights, so it may differ between runs and be set when a model is bundled."""

    temperature: float = Field(1.0, ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX, allow_inf_nan=False)
    # In the frames the features mark voiced (`vuv`), in place of `temperature`: LPCNet sharpens voiced frames only.
    voiced_temperature: float | None = Field(None, ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1, le=TOP_K_MAX)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)


class Config(_Strict):
    """A complete recipe: audio, features, the model, its speakers, how to train it, how it samples by default,
    and optionally a student."""

    name: str = Field(min_length=1)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    speakers: list[str] = Field(default_factory=list, description="speaker names; empty: no global conditioning")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="a teacher's default sampling")
    student: StudentConfig | None = Field(None, description="a Parallel WaveNet student distilled from this teacher")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        product = math.prod(self.model.upsample_scales)
        if product != self.features.hop_length:
            raise ValueError(
                f"model.upsample_scales {self.model.upsample_scales} multiply to {product}, "
                f"but features.hop_length is {self.features.hop_length}"
            )
        fmax = self.features.fmax
        if fmax is not None and fmax > self.audio.sample_rate / 2:
            raise ValueError(f"features.fmax ({fmax}) exceeds the Nyquist frequency {self.audio.sample_rate / 2}")
        if len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"speakers lists a name twice: {self.speakers}")
        student = self.student
        if student is not None and student.adversarial and student.adversarial_start_step >= self.train.max_steps:
            raise ValueError(
                f"student.adversarial_start_step ({student.adversarial_start_step}) must be below train.max_steps "
                f"({self.train.max_steps}): the discriminator would never join"
            )
        if self.model.lpc_order and "mel" not in self.features.conditioning:
            raise ValueError(
                f"model.lpc_order ({self.model.lpc_order}) computes the predictor from the mel spectrogram's "
                f"envelope, but this config conditions on {self.features.conditioning}: add 'mel' or set lpc_order 0"
            )
        if self.train.augments and "mel" not in self.features.conditioning:
            raise ValueError(
                "train.gain_db and train.tilt change the audio's level and spectrum, which only mel conditioning "
                f"follows; this config conditions on {self.features.conditioning}"
            )
        return self

    def speaker_id(self, speaker: str) -> int:
        return self.speakers.index(speaker)

    @property
    def reads_f0(self) -> bool:
        """Whether the model reads the recording's F0 beside its conditioning: a student's harmonic source does."""
        return self.student is not None and self.student.source_harmonics > 0

    def feature_arrays(self) -> list[ConditioningArray]:
        """The arrays a feature file must hold for this recipe's models: the conditioning, then `lf0` and `vuv` for
        a student with a harmonic source (it reads F0 even where the conditioning is the mel alone). What `extract`
        and `preprocess` write, `validate_features` requires and the service extracts from a recording."""
        wanted = list(self.features.conditioning)
        if self.reads_f0:
            wanted += [name for name in F0_ARRAYS if name not in wanted]
        return wanted

    def extracted_arrays(self) -> list[ConditioningArray]:
        """What `extract`, `preprocess` and the service compute from a recording: `feature_arrays`, and `lf0` and
        `vuv` for a teacher whose default sampling ties its temperature to voicing (optional in its input: without
        them it samples at `temperature` throughout)."""
        wanted = self.feature_arrays()
        if self.sampling.voiced_temperature is not None:
            wanted += [name for name in F0_ARRAYS if name not in wanted]
        return wanted

    def feature_array_dims(self) -> dict[str, int]:
        """The width of each of `feature_arrays`."""
        return self.features.array_dims(self.feature_arrays())

    def extracted_array_dims(self) -> dict[str, int]:
        """The width of each of `extracted_arrays`: every array a feature file for this recipe may hold."""
        return self.features.array_dims(self.extracted_arrays())


Origins = dict[tuple[str, ...], Path]
"""Which file of a recipe and its bases set each key (a path of nested keys) of the merged mapping."""

BASE_KEY = "base"


def _origin(location: tuple[str, ...], origins: Origins) -> Path | None:
    """The file that set the key at `location`, or the nearest mapping above it, if a base did."""
    for end in range(len(location), 0, -1):
        if location[:end] in origins:
            return origins[location[:end]]
    return None


def _describe(error: ValidationError, origins: Origins) -> str:
    lines = []
    for item in error.errors():
        location = tuple(str(part) for part in item["loc"])
        where = _origin(location, origins)
        lines.append(f"  {'.'.join(location) or '(top level)'}: {item['msg']}" + (f" (from {where})" if where else ""))
    return "\n".join(lines)


def config_from_dict(data: object, source: str, origins: Origins | None = None) -> Config:
    """Validate a parsed mapping; `source` names where it came from in any error, `origins` the bases' keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, found {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid config\n{_describe(error, origins or {})}") from None


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a shipped recipe (e.g. 'seed_size')."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    raise ConfigError(
        f"{name_or_path}: no such config file, and no recipe of that name; looked for {path.absolute()} and {bundled}"
    )


def overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`: mappings merge key by key; any other value, a list included, replaces the base's."""
    merged = dict(base)
    for key, value in changes.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = overlay(merged[key], value) if both_mappings else value
    return merged


def _keys(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of a nested mapping, as a path."""
    keys = []
    for key, value in data.items():
        keys.append((*prefix, str(key)))
        if isinstance(value, dict):
            keys.extend(_keys(value, (*prefix, str(key))))
    return keys


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def _base_path(name: object, path: Path) -> Path:
    """The file `base: name` of `path` means: a YAML file beside it, else a shipped recipe."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: {BASE_KEY}: expected the name of a recipe, found {name!r}")
    file_name = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    candidates = list(dict.fromkeys([path.parent / file_name, CONFIG_DIR / file_name]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{path}: {BASE_KEY}: no recipe {name!r}; looked for {' and '.join(map(str, candidates))}")


def _merged(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Origins]:
    """A recipe's mapping over its base's (recursively), and which file set each key; `chain`: the recipes
    that have this one as their base, nearest last."""
    data = _read_mapping(path)
    if BASE_KEY not in data:
        return data, dict.fromkeys(_keys(data), path)
    base_path = _base_path(data.pop(BASE_KEY), path)
    if "name" not in data:  # it would silently take its base's name, which model files and cards then carry
        raise ConfigError(f"{path}: name: missing; a recipe with a base must name itself")
    chain = (*chain, path.resolve())
    if base_path.resolve() in chain:
        cycle = " -> ".join(p.name for p in (*chain, base_path.resolve()))
        raise ConfigError(f"{path}: {BASE_KEY}: recipes that are each other's base ({cycle})")
    base, origins = _merged(base_path, chain)
    return overlay(base, data), origins | dict.fromkeys(_keys(data), path)


def load_config(name_or_path: str | Path) -> Config:
    """A recipe by path or shipped name. A recipe may name a `base:` recipe and state only how it differs from it;
    an error names the file that set the wrong key."""
    path = resolve_config_path(name_or_path)
    data, origins = _merged(path)
    return config_from_dict(data, str(path), {key: file for key, file in origins.items() if file != path})
