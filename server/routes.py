"""HTTP routes: health, readiness, metrics, the model and voice lists, and synthesis from features, labels, audio
(copy synthesis) or text (also in OpenAI's speech shape)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from vocoder.api import Vocoder
from vocoder.features.featurefile import Features
from vocoder.frontend.festival import VOICES
from vocoder.generate import Sampling
from vocoder.vocabulary import KIND_METHODS, Method
from vocoder_server.auth import require_api_key
from vocoder_server.encoding import MEDIA_TYPES, RAW_PCM, STREAMABLE, encode_audio, encode_chunk, wav_header
from vocoder_server.errors import ApiError, client_closed
from vocoder_server.inference import Job, QueueFull
from vocoder_server.linguistic import check_text_frames, require_linguistic
from vocoder_server.schemas import (
    OPENAI_MODELS,
    ConditioningInfo,
    FeaturesBody,
    Health,
    ModelInfo,
    ModelList,
    Readiness,
    SamplingDefaults,
    SpeechBody,
    SpeechFormat,
    SynthesisParams,
    TtsBody,
    VoiceInfo,
    VoiceList,
    error_responses,
)
from vocoder_server.settings import Settings
from vocoder_server.state import ServiceState, get_state
from vocoder_server.uploads import (
    AUDIO_FIELD,
    UPLOAD_FIELD,
    features_from_audio,
    features_from_request,
    media_type,
    read_body,
    speech_body,
    tts_body,
)

STREAMING_METHODS: tuple[Method, ...] = ("fast", "student")
"""Methods that yield audio as they go (a student yields its one-pass waveform in chunks)."""

router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=error_responses(401))

AUDIO_RESPONSE = {
    "description": "the waveform; headers X-Model, X-Sample-Rate, X-Audio-Samples, X-Audio-Duration, (unless "
    "streamed) X-Synthesis-Time, and X-Ignored-Settings when the model ignores some of the settings given",
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in set(MEDIA_TYPES.values())},
}


def _file_field(field: str, description: str) -> dict[str, Any]:
    """The OpenAPI content of a multipart body holding one file in `field`."""
    properties = {field: {"type": "string", "format": "binary", "description": description}}
    return {"multipart/form-data": {"schema": {"type": "object", "required": [field], "properties": properties}}}


SYNTHESIZE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **_file_field(UPLOAD_FIELD, "a feature file (.npz), or an HTS label file (.lab) for a linguistic model"),
            "application/json": {"schema": FeaturesBody.model_json_schema()},
        },
    }
}
VOCODE_BODY = {
    "requestBody": {
        "required": True,
        "content": _file_field(
            AUDIO_FIELD, "a recording: WAV, FLAC, OGG (any format libsndfile reads), any common rate, mono or stereo"
        ),
    }
}

TTS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": TtsBody.model_json_schema()}}}}
SPEECH_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": SpeechBody.model_json_schema()}}}
}


PAGE = (Path(__file__).parent / "page" / "index.html").read_text()
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src blob:; connect-src 'self'"
)
"""The page loads nothing but itself and talks only to this service."""


@router.get("/", response_class=HTMLResponse, tags=["page"])
async def page() -> HTMLResponse:
    """A web page to try the service: text or a dropped recording in; the audio, its spectrogram (and the
    upload's), the synthesis time and real-time factor out. One file, no CDN: it works offline."""
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/healthz", response_model=Health, tags=["operations"])
async def healthz() -> Health:
    """The process is up and answering (it may still be loading models: see /readyz)."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["operations"])
async def readyz(state: ServiceState = Depends(get_state)) -> JSONResponse:
    """Ready once every model has loaded and been warmed up; 503 (with the reasons) before that or on failure."""
    registry = state.registry
    body = Readiness(ready=registry.ready, models=sorted(registry.models), problems=registry.problems())
    return JSONResponse(body.model_dump(), status_code=200 if registry.ready else 503)


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(state: ServiceState = Depends(get_state)) -> Response:
    """Prometheus text format."""
    return state.metrics.render()


def frame_cap(model: Vocoder, service_cap: int | None) -> int:
    """The longest input accepted for `model`: its own limit, or the service's if lower."""
    own = model.config.features.max_frames
    return own if service_cap is None else min(own, service_cap)


@v1.get("/models", response_model=ModelList, tags=["synthesis"])
async def models(state: ServiceState = Depends(get_state)) -> ModelList:
    """The served models and the input each expects."""
    infos = []
    for name, model in sorted(state.registry.models.items()):
        config = model.config
        infos.append(
            ModelInfo(
                name=name,
                kind=model.kind,
                sample_rate=model.sample_rate,
                hop_length=config.features.hop_length,
                conditioning=[ConditioningInfo(name=k, dim=v) for k, v in config.features.array_dims().items()],
                conditioning_dim=config.features.dim,
                feature_arrays=[ConditioningInfo(name=k, dim=v) for k, v in config.feature_array_dims().items()],
                speakers=list(config.speakers),
                receptive_field=model.model.receptive_field,
                receptive_field_ms=round(1000 * model.model.receptive_field / model.sample_rate, 3),
                max_frames=frame_cap(model, state.settings.max_frames),
                parameters=model.model.parameter_count(),
                sampling=SamplingDefaults(**{k: v for k, v in asdict(model.default_sampling).items() if k != "seed"}),
            )
        )
    return ModelList(models=infos)


def _unavailable(message: str, retry_after: int) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


@v1.post(
    "/synthesize",
    tags=["synthesis"],
    response_class=Response,
    responses={200: AUDIO_RESPONSE, **error_responses(413, 415, 422, 503, 504)},
    openapi_extra=SYNTHESIZE_BODY,
)
async def synthesize(
    request: Request,
    params: Annotated[SynthesisParams, Query()],
    state: ServiceState = Depends(get_state),
) -> Response:
    """Feature file (multipart `.npz`, or JSON arrays) to audio; an HTS `.lab` upload for a linguistic model.
    `stream=true` sends WAV chunks as they are generated."""
    arrived = time.monotonic()
    model = _model(state, params.model)
    cap = frame_cap(model, state.settings.max_frames)
    settings = state.settings
    features = await features_from_request(request, settings.max_upload_bytes, settings.body_timeout, model, cap)
    return await _deliver(request, state, model, features, params, arrived)


@v1.post(
    "/tts",
    tags=["synthesis"],
    response_class=Response,
    responses={200: AUDIO_RESPONSE, **error_responses(413, 415, 422, 501, 503, 504)},
    openapi_extra=TTS_BODY,
)
async def tts(
    request: Request,
    params: Annotated[SynthesisParams, Query()],
    state: ServiceState = Depends(get_state),
) -> Response:
    """Text to audio with a linguistic model: Festival analyses the text (labels, F0), the model speaks it.
    The speaker defaults to the Festival voice."""
    arrived = time.monotonic()
    model = _model(state, params.model, reads="linguistic")
    body = tts_body(await _json_body(request, state.settings))
    speaker = params.speaker or (body.voice if model.config.speakers else None)
    features = await _analyse(request, state, model, body.text, body.voice, speaker, body.speed, arrived)
    return await _deliver(request, state, model, features, params, arrived)


SPEECH_FORMATS: dict[str, str] = {"wav": "pcm16", "flac": "flac", "pcm": RAW_PCM}
"""OpenAI's `response_format` to this service's encoding."""
assert set(SPEECH_FORMATS) == set(SpeechFormat.__args__)  # type: ignore[attr-defined]


@v1.post(
    "/audio/speech",
    tags=["openai"],
    response_class=Response,
    responses={200: AUDIO_RESPONSE, **error_responses(413, 415, 422, 501, 503, 504)},
    openapi_extra=SPEECH_BODY,
)
async def speech(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    """OpenAI's speech route (`client.audio.speech.create`): text through Festival and the linguistic model.
    `model` names a served model, or one of OpenAI's names for the default; `voice` is a Festival voice."""
    arrived = time.monotonic()
    body = speech_body(await _json_body(request, state.settings))
    model = _model(state, None if body.model in OPENAI_MODELS else body.model, reads="linguistic")
    speaker = body.voice if model.config.speakers else None
    features = await _analyse(request, state, model, body.input, body.voice, speaker, body.speed, arrived)
    params = SynthesisParams()
    return await _deliver(request, state, model, features, params, arrived, SPEECH_FORMATS[body.response_format])


@v1.get("/voices", response_model=VoiceList, tags=["openai"])
async def voices(state: ServiceState = Depends(get_state)) -> VoiceList:
    """The voices of the text routes: every Festival voice with every served model that reads linguistic
    features (for a model with speakers, the voices among them)."""
    listed = []
    for name, model in sorted(state.registry.models.items()):
        if "linguistic" not in model.config.features.conditioning:
            continue
        for voice in VOICES.values():
            if not model.config.speakers or voice.key in model.config.speakers:
                listed.append(
                    VoiceInfo(
                        name=voice.key,
                        model=name,
                        language=voice.language,
                        festival_voice=voice.festival_name,
                        package=voice.package,
                    )
                )
    return VoiceList(voices=listed)


async def _json_body(request: Request, settings: Settings) -> bytes:
    """A JSON body within the size and time limits; 415 for any other media type."""
    if media_type(request) != "application/json":
        raise ApiError(415, "unsupported_media_type", f"expected application/json, found {media_type(request)}")
    return await read_body(request, settings.max_upload_bytes, settings.body_timeout)


async def _analyse(
    request: Request,
    state: ServiceState,
    model: Vocoder,
    text: str,
    voice: str,
    speaker: str | None,
    speed: float,
    arrived: float,
) -> Features:
    """Festival's features of `text` for `model`, in the text analysis pool, within the request's time."""
    settings = state.settings
    require_linguistic(model)
    check_text_frames(text, model, frame_cap(model, settings.max_frames), speed)
    remaining = settings.timeout - (time.monotonic() - arrived)
    limit = min(settings.tts_timeout, remaining)
    analysis = state.text_analysis.features(text, voice, speaker, model, limit, speed)
    try:
        return await asyncio.wait_for(_unless_gone(request, analysis), remaining)
    except QueueFull:
        raise _unavailable("the text analysis queue is full; retry later", settings.retry_after) from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"text analysis did not finish within {settings.timeout:g} s") from None


@v1.post(
    "/vocode",
    tags=["synthesis"],
    response_class=Response,
    responses={200: AUDIO_RESPONSE, **error_responses(413, 415, 422, 503, 504)},
    openapi_extra=VOCODE_BODY,
)
async def vocode(
    request: Request,
    params: Annotated[SynthesisParams, Query()],
    state: ServiceState = Depends(get_state),
) -> Response:
    """Copy synthesis: a recording (multipart field `audio`) is analysed as the model reads it and resynthesised.
    Header `X-Input-Conversion` says how it was resampled or mixed down (`none` when it was not)."""
    arrived = time.monotonic()
    model = _model(state, params.model, reads="mel")
    settings = state.settings
    cap = frame_cap(model, settings.max_frames)
    features, conversion = await features_from_audio(
        request, settings.max_upload_bytes, settings.body_timeout, model, cap
    )
    notes = {"X-Input-Conversion": conversion}
    return await _deliver(request, state, model, features, params, arrived, notes=notes)


def _model(state: ServiceState, name: str | None, reads: str | None = None) -> Vocoder:
    if not state.registry.loaded:
        raise _unavailable("models are still loading", state.settings.retry_after)
    return state.registry.resolve(name, state.settings.default_model, reads)


async def _deliver(
    request: Request,
    state: ServiceState,
    model: Vocoder,
    features: Features,
    params: SynthesisParams,
    arrived: float,
    audio_format: str | None = None,
    notes: dict[str, str] | None = None,
) -> Response:
    """Validate `features` for `model`, queue the synthesis and answer with audio (whole or streamed) in
    `audio_format` (default: the parameters'); `notes` are extra response headers."""
    settings = state.settings
    features = model.features(features, params.speaker)
    cap = frame_cap(model, settings.max_frames)
    if features.n_frames > cap:
        raise ApiError(422, "invalid_features", f"frames: at most {cap} frames, found {features.n_frames}", "frames")
    method = params.method or model.default_method
    if method not in KIND_METHODS[model.kind]:
        allowed = list(KIND_METHODS[model.kind])
        raise ApiError(422, "invalid_parameter", f"method: a {model.kind} model takes one of {allowed}", "method")
    if method == "naive":
        _admit_naive(features, settings.naive_max_frames)
    sampling = model.sampling(
        params.strategy, params.temperature, params.top_k, params.top_p, params.seed, params.voiced_temperature
    )
    headers = {
        "X-Model": model.name,
        "X-Sample-Rate": str(model.sample_rate),
        "X-Audio-Samples": str(features.n_samples),
        "X-Audio-Duration": f"{features.n_samples / model.sample_rate:.4f}",
        **(notes or {}),
    }
    ignored, _ = model.ignored_settings(sampling, [features])
    if ignored:  # a student has no distribution to reshape; argmax takes the raw mode: said, not silently accepted
        headers["X-Ignored-Settings"] = ", ".join(ignored)
    remaining = settings.timeout - (time.monotonic() - arrived)
    if params.stream:
        return await _stream(state, model, features, params, method, sampling, headers, remaining)
    job = Job(model, features, method, sampling)
    try:
        wav = await _unless_gone(request, state.engine.run(job, remaining))
    except QueueFull:
        raise _unavailable("the synthesis queue is full; retry later", settings.retry_after) from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"synthesis did not finish within {settings.timeout:g} s") from None
    headers["X-Synthesis-Time"] = f"{time.monotonic() - arrived:.4f}"
    audio_format = audio_format or params.format
    audio = await asyncio.to_thread(encode_audio, wav, model.sample_rate, audio_format)
    return Response(audio, media_type=MEDIA_TYPES[audio_format], headers=headers)


def _admit_naive(features: Features, max_frames: int) -> None:
    """The naive reference is hundreds of times slower than fast: off unless `naive_max_frames` allows it."""
    if max_frames == 0:
        message = "method: naive generation is off in this service (VOCODER_NAIVE_MAX_FRAMES); use fast"
        raise ApiError(422, "invalid_parameter", message, "method")
    if features.n_frames > max_frames:
        message = f"frames: method naive takes at most {max_frames} frames, found {features.n_frames}"
        raise ApiError(422, "invalid_features", message, "frames")


DISCONNECT_POLL_SECONDS = 0.25
Result = TypeVar("Result")


async def _unless_gone(request: Request, work: Awaitable[Result]) -> Result:
    """`work`'s result, or a `client_closed` error as soon as the client disconnects; cancelling `work` abandons
    its job, which stops at its next chunk."""
    task = asyncio.ensure_future(work)
    try:
        while not await request.is_disconnected():
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
        raise client_closed()
    finally:
        task.cancel()  # nothing when done


async def _stream(
    state: ServiceState,
    model: Vocoder,
    features: Features,
    params: SynthesisParams,
    method: str,
    sampling: Sampling,
    headers: dict[str, str],
    timeout: float,
) -> StreamingResponse:
    """Wait (within the timeout) for the first chunk, then send the header and every chunk as it is made.

    The timeout covers queueing up to the first chunk: once audio flows, the stream runs to its end unless the
    client disconnects, which stops the generation at its next chunk."""
    if params.format not in STREAMABLE:
        raise ApiError(422, "invalid_parameter", f"format: streaming supports {list(STREAMABLE)}", "format")
    if method not in STREAMING_METHODS:
        raise ApiError(422, "invalid_parameter", f"method: streaming takes one of {list(STREAMING_METHODS)}", "method")
    job = Job(model, features, method, sampling, chunk_samples=state.settings.stream_chunk_samples)
    try:
        stream = state.engine.open_stream(job)
    except QueueFull:
        raise _unavailable("the synthesis queue is full; retry later", state.settings.retry_after) from None
    try:
        first = await stream.next(timeout)
    except TimeoutError:
        stream.close()
        raise ApiError(504, "timeout", f"synthesis did not start within {state.settings.timeout:g} s") from None
    except BaseException:
        stream.close()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield wav_header(features.n_samples, model.sample_rate, params.format)
            chunk = first
            while chunk is not None:
                yield encode_chunk(chunk, params.format)
                chunk = await stream.next()
        finally:
            stream.close()

    return StreamingResponse(body(), media_type=MEDIA_TYPES[params.format], headers=headers)


router.include_router(v1)
