"""Turning a request body into `Features`: the media type first, then the size limit, then the contents.

Uploads are feature files (`.npz`), HTS labels (`.lab`) or, for copy synthesis, recordings in any format
libsndfile reads, decoded in-process.

Only bytes travel: a request can never name a file on the server (an upload's file name only tells a `.lab`
from an `.npz`), and `.npz` uploads are read without pickle.
An `.npz` is a zip whose headers declare how big each array is; those declarations are checked against the
upload limit, and each member's `.npy` header against its data, before numpy allocates anything, so a small
archive cannot claim gigabytes (a zip bomb).

A JSON body of more than `JSON_IN_PROCESS_BYTES` is parsed in a separate process (`JsonParser`): pydantic's
parser holds the GIL for the whole parse (about 0.6 s for a body at the frame cap on the development machine), so
parsing it in a thread stalls the event loop and every inference thread for that long (measured: a student's p99
from 0.34 s to 3.3 s beside two clients sending such bodies; docs/BENCHMARKS.md, "Mixed load").
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import threading
import zipfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from fastapi import Request
from starlette.requests import ClientDisconnect

from vocoder.api import Vocoder
from vocoder.audio import AudioFileError, decode_audio
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import Features, read_features
from vocoder.vocabulary import MATRIX_ARRAYS
from vocoder_server.errors import ApiError, client_closed
from vocoder_server.json_body import SOURCE, features_from_json, parse_body, parse_features_apart
from vocoder_server.linguistic import features_from_labels
from vocoder_server.schemas import SpeechBody, TtsBody

UPLOAD_FIELD = "features"
AUDIO_FIELD = "audio"
LABEL_SUFFIX = ".lab"


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, or 413 as soon as it (or its declared length) passes `limit` bytes; 408 when it has not
    all arrived within `timeout` seconds (a client that stalls mid-body does not hold the request open)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too_large", f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"the request body did not arrive within {timeout:g} s") from None
    except ClientDisconnect:  # the upload was abandoned: the client's doing, logged and counted as such
        raise client_closed() from None
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def features_from_request(
    request: Request, limit: int, timeout: float, model: Vocoder, max_frames: int
) -> Features:
    """An `.npz` (or, for a linguistic `model`, an HTS `.lab`) in a multipart field `features`, or a JSON
    `FeaturesBody`; any other media type is a 415."""
    kind = media_type(request)
    if kind not in ("multipart/form-data", "application/json"):
        raise ApiError(
            415, "unsupported_media_type", f"expected multipart/form-data or application/json, found {kind or 'none'}"
        )
    body = await read_body(request, limit, timeout)
    if kind == "application/json":
        check_json_counts(body, model, max_frames)
        if len(body) > JSON_IN_PROCESS_BYTES:
            return await JSON_PARSER.parse(body)
        return await asyncio.to_thread(features_from_json, body)
    filename, data = await _upload(request, body, UPLOAD_FIELD)
    if filename.lower().endswith(LABEL_SUFFIX):
        return await asyncio.to_thread(features_from_labels, data, model, max_frames)
    return await asyncio.to_thread(features_from_npz, data, limit)


async def _upload(request: Request, body: bytes, field: str) -> tuple[str, bytes]:
    """The file in `field` (its name and bytes) of a multipart body already read and size-checked."""
    delivered = False

    async def replay() -> dict[str, object]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    except Exception as error:  # starlette raises its own errors for malformed multipart data
        raise ApiError(422, "invalid_multipart", f"malformed multipart body: {error}", field) from None
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        message = f"expected a file in the multipart field '{field}'"
        raise ApiError(422, f"missing_{field}", message, field)
    data = await upload.read()
    await form.close()
    return upload.filename or "", data


async def features_from_audio(
    request: Request, limit: int, timeout: float, model: Vocoder, max_frames: int
) -> tuple[Features, str]:
    """Copy synthesis input: a recording in the multipart field `audio`, decoded in-process (libsndfile, no
    shell), mixed down and resampled to `model`'s rate, and analysed as `model` reads it (`extract_features`).
    Returns the features and what conversion the recording needed."""
    require_acoustic(model)
    kind = media_type(request)
    if kind != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", f"expected multipart/form-data, found {kind or 'none'}")
    body = await read_body(request, limit, timeout)
    filename, data = await _upload(request, body, AUDIO_FIELD)
    return await asyncio.to_thread(acoustic_features, data, filename or AUDIO_FIELD, model, max_frames)


def require_acoustic(model: Vocoder) -> None:
    """422 unless `model` reads only features that a recording gives (mel, F0)."""
    if "linguistic" in model.config.features.conditioning:
        message = f"model: {model.name!r} reads linguistic features, which come from text (POST /v1/tts), not audio"
        raise ApiError(422, "not_acoustic", message, "model")


def acoustic_features(data: bytes, name: str, model: Vocoder, max_frames: int) -> tuple[Features, str]:
    """Decode at most `max_frames` frames of audio and extract `model`'s features from it (blocking)."""
    rate, hop = model.sample_rate, model.config.features.hop_length
    try:
        decoded = decode_audio(io.BytesIO(data), rate, name, max_seconds=max_frames * hop / rate)
    except AudioFileError as error:
        raise ApiError(422, "invalid_audio", f"{AUDIO_FIELD}: {error}", AUDIO_FIELD) from None
    features = extract_features(decoded.wav, model.config, source=SOURCE)
    return features, decoded.conversion(rate)


def check_npz_sizes(data: bytes, limit: int) -> None:
    """Refuse an archive of more than 16 members, or whose members declare more than `limit` bytes in all
    (`read_features` checks each member's own header against its data)."""
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip: read_features says precisely what is wrong
    if len(entries) > 16 or sum(entry.file_size for entry in entries) > limit:
        raise ApiError(413, "too_large", f"feature arrays unpack to more than {limit} bytes", UPLOAD_FIELD)


def features_from_npz(data: bytes, limit: int) -> Features:
    check_npz_sizes(data, limit)
    return read_features(data, source=SOURCE)


def tts_body(body: bytes) -> TtsBody:
    return parse_body(TtsBody, body)


def speech_body(body: bytes) -> SpeechBody:
    return parse_body(SpeechBody, body)


JSON_SLACK = 256
"""Brackets and commas a valid body may hold beyond its arrays' (the scalars; commas inside the speaker's name)."""


def check_json_counts(body: bytes, model: Vocoder, max_frames: int) -> None:
    """413 before parsing when the body holds more rows or numbers than `model` reads in `max_frames` frames.

    Parsed, every number becomes a Python object of about 32 bytes (a body of `[0]` rows, 60 times its size);
    counting brackets and commas first bounds the parse by the frame cap, whatever the body's size."""
    dims = model.config.extracted_array_dims()  # F0 arrays too, where read or used
    matrices = sum(1 for name in dims if name in MATRIX_ARRAYS) or 1
    rows_allowed = matrices * max_frames + JSON_SLACK
    numbers_allowed = max_frames * (sum(dims.values()) + 2) + JSON_SLACK
    rows, numbers = body.count(b"["), body.count(b",") + 1
    if rows > rows_allowed or numbers > numbers_allowed:
        message = (
            f"body: model {model.name!r} reads at most {max_frames} frames ({numbers_allowed} numbers in "
            f"{rows_allowed} rows); the body holds about {numbers} numbers in {rows} rows"
        )
        raise ApiError(413, "too_large", message, "body")


JSON_IN_PROCESS_BYTES = 256 * 1024
"""Larger JSON bodies are parsed in `JsonParser`'s process (smaller ones take a few milliseconds in a thread)."""


class JsonParser:
    """One process that parses large JSON bodies one at a time, off this process's GIL (a bounded pool of its
    own: requests wait for it, and its memory is one parse's, bounded by the frame cap). Started on first use
    (forkserver: no copy of the service's threads or models; it imports only `json_body`); restarted if it dies."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool

    def start(self) -> None:
        """Start the process now (seconds of imports), so the first large body does not wait for it."""
        self._executor().submit(parse_features_apart, b"{}").result()

    async def parse(self, body: bytes) -> Features:
        pool = self._executor()
        try:
            result = await asyncio.wrap_future(pool.submit(parse_features_apart, body))
        except BrokenProcessPool:  # the process died (killed for memory?): the next body gets a new one
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            raise
        if isinstance(result, Features):
            return result
        status, code, message, field = result
        raise ApiError(status, code, message, field)

    def stop(self) -> None:
        """End the process and wait for it (a parse under way finishes first); the next body starts a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


JSON_PARSER = JsonParser()
