"""Request and response models: they validate input before any work and document the API in /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vocoder.constants import TEMPERATURE_MAX, TEMPERATURE_MIN, TOP_K_MAX
from vocoder.frontend.festival import MAX_SPEED, MIN_SPEED, VOICES
from vocoder.vocabulary import Method, Strategy

AudioFormat = Literal["pcm16", "float", "flac"]
"""`vocoder.audio.AUDIO_FORMATS` by name (`encoding` checks that they agree): the schemas import no torch."""

NAME_LENGTH = 100
TEXT_LENGTH = 500
"""Characters of one /v1/tts text (how much speech and Festival time that is: docs/BENCHMARKS.md)."""
VoiceName = Literal[tuple(VOICES)]  # type: ignore[valid-type]


def _temperature(description: str) -> Any:
    """An optional temperature within the bounds the library checks (`vocoder.constants`)."""
    return Field(None, ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX, allow_inf_nan=False, description=description)


class SynthesisParams(BaseModel):
    """Query parameters of `POST /v1/synthesize` (the same for an upload and a JSON body)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, max_length=NAME_LENGTH, description="a served model (GET /v1/models); default: the only or default one"
    )
    method: Method | None = Field(
        None,
        description="a teacher: fast (Fast-WaveNet queues, fused kernel where it runs), fast-torch (plain PyTorch "
        "queues) or naive (the reference); a student: student. Default: fast for a teacher, student for a student",
    )
    strategy: Strategy | None = Field(None, description="sample (default), argmax or mean")
    temperature: float | None = _temperature("divides the logits; default: the model's (GET /v1/models, `sampling`)")
    voiced_temperature: float | None = _temperature(
        "in place of temperature in the frames the features' vuv marks voiced; default: the model's"
    )
    top_k: int | None = Field(
        None, ge=1, le=TOP_K_MAX, description="sample among the k most likely classes; default: the model's"
    )
    top_p: float | None = Field(
        None, gt=0, le=1, allow_inf_nan=False, description="nucleus mass (1: no cut); default: the model's"
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="reproducible sampling (the CLI's audio)")
    speaker: str | None = Field(None, max_length=NAME_LENGTH, description="overrides the features' speaker")
    format: AudioFormat = Field("pcm16", description="pcm16 or float WAV, or FLAC (16 bit)")
    stream: bool = Field(False, description="chunked WAV as it is generated (pcm16 or float only)")


class FeaturesBody(BaseModel):
    """A feature file as JSON: frame-major arrays as nested lists (see docs/FEATURES.md)."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(description="must equal the model's")
    hop_length: int = Field(description="samples per frame; must equal the model's")
    mel: list[list[float]] | None = Field(None, description="[frames, n_mels] natural-log mel magnitudes")
    lf0: list[float] | None = Field(None, description="[frames] continuous log-F0")
    vuv: list[float] | None = Field(None, description="[frames] 1 voiced, 0 unvoiced")
    linguistic: list[list[float]] | None = Field(None, description="[frames, D] linguistic features")
    speaker: str | None = Field(None, max_length=NAME_LENGTH)


class TtsBody(BaseModel):
    """Text for `POST /v1/tts`: one utterance, and the Festival voice that analyses it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=TEXT_LENGTH, description="the text to speak (ASCII after folding)")
    voice: VoiceName = Field("slt", description="Festival voice (its labels and F0); the default speaker")
    speed: float = Field(
        1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False, description="speaking rate: Festival's durations / speed"
    )


SpeechFormat = Literal["wav", "flac", "pcm"]
"""OpenAI's `response_format` values this service encodes: 16-bit WAV, 16-bit FLAC, raw 16-bit little-endian."""
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""OpenAI's model names: each means this service's default text model (the one model that reads linguistic
features, else `default_model`), so a client written for OpenAI works unchanged."""


class SpeechBody(BaseModel):
    """OpenAI's `POST /v1/audio/speech` body, mapped onto the linguistic model and the Festival front end."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        max_length=NAME_LENGTH,
        description=f"a served model that reads linguistic features, or one of {list(OPENAI_MODELS)} for the default",
    )
    input: str = Field(min_length=1, max_length=TEXT_LENGTH, description="the text to speak (ASCII after folding)")
    voice: VoiceName = Field(description="a Festival voice of GET /v1/voices (its labels and F0); the speaker")
    response_format: SpeechFormat = Field(
        "wav", description="wav or flac (16 bit), or pcm: raw 16-bit little-endian mono at X-Sample-Rate"
    )
    speed: float = Field(
        1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False, description="speaking rate: Festival's durations / speed"
    )


class VoiceInfo(BaseModel):
    """A voice a text route can speak with: a Festival voice and the model that speaks it."""

    name: str = Field(description="the `voice` of /v1/audio/speech and /v1/tts")
    model: str = Field(description="a served model that reads linguistic features")
    language: str = Field(description="BCP 47 tag")
    festival_voice: str
    package: str = Field(description="the Debian package that holds the Festival voice")


class VoiceList(BaseModel):
    voices: list[VoiceInfo]


class ConditioningInfo(BaseModel):
    name: str
    dim: int


class SamplingDefaults(BaseModel):
    """A model's default sampling: its card's measured best (a student draws plainly: no distribution to shape)."""

    strategy: Strategy
    temperature: float
    voiced_temperature: float | None
    top_k: int | None
    top_p: float | None


class ModelInfo(BaseModel):
    """What a client needs to build valid input for a model."""

    name: str
    kind: str
    sample_rate: int
    hop_length: int
    conditioning: list[ConditioningInfo]
    conditioning_dim: int
    feature_arrays: list[ConditioningInfo] = Field(
        description="the arrays a feature file must hold: the conditioning, and for a student with a harmonic source "
        "lf0 and vuv too (its source follows F0, exp(lf0) * vuv Hz)"
    )
    speakers: list[str]
    receptive_field: int = Field(description="samples one output depends on")
    receptive_field_ms: float
    max_frames: int = Field(description="longest input accepted, after the service's own cap")
    parameters: int
    sampling: SamplingDefaults = Field(description="what a request's unset sampling parameters mean for this model")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    models: list[str]
    problems: list[str]


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {status: {"model": ErrorBody} for status in statuses}
