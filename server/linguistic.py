"""Linguistic input for models conditioned on it: an uploaded HTS `.lab` file, or text through Festival.

Both are the text front end's (`vocoder.frontend.features`: `label_features`, `analyse_text`); this module maps
their errors and the service's limits to HTTP answers. Only text brings F0 (Festival's intonation targets): a label
file has none, so a model that reads lf0 needs a feature file or text.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from vocoder.api import Vocoder
from vocoder.features.featurefile import Features
from vocoder.features.linguistic import LabelFileError, label_samples, parse_labels
from vocoder.frontend.features import analyse_text, check_linguistic_config, label_features
from vocoder.frontend.festival import FestivalError, FestivalTimeout, festival_binary, to_festival_text
from vocoder_server.errors import ApiError
from vocoder_server.inference import QueueFull, ShuttingDown

SOURCE = "request"
SECONDS_PER_LETTER = 0.04
SECONDS_PER_DIGIT = 0.1
"""Lower bounds on what Festival makes of a character (below the measured figures of docs/BENCHMARKS.md), so a
text refused by its estimate would have been refused after the analysis too."""


def require_linguistic(model: Vocoder) -> None:
    """422 unless `model` reads linguistic features of the project's question set."""
    if "linguistic" not in model.config.features.conditioning:
        message = f"model: {model.name!r} reads {model.config.features.conditioning}, not linguistic features"
        raise ApiError(422, "not_linguistic", message, "model")
    check_linguistic_config(model.config)


def features_from_labels(data: bytes, model: Vocoder, max_frames: int) -> Features:
    """The linguistic and vuv arrays of an HTS full-context label file, on `model`'s frame grid.

    The length is checked against `max_frames` from the labels' end time, before any per-frame array exists."""
    require_linguistic(model)
    if "lf0" in model.config.features.conditioning:
        message = f"lf0: model {model.name!r} reads lf0, which a label file lacks; send a feature file or text"
        raise ApiError(422, "missing_f0", message, "lf0")
    try:
        segments = parse_labels(data.decode("utf-8"), SOURCE)
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_labels", "features: a label file must be UTF-8 text", "features") from None
    except LabelFileError as error:
        raise ApiError(422, "invalid_labels", str(error), "features") from None
    rate, hop = model.sample_rate, model.config.features.hop_length
    frames = -(-label_samples(segments, rate) // hop)
    if frames > max_frames:
        raise ApiError(422, "invalid_features", f"frames: at most {max_frames} frames, found {frames}", "frames")
    return label_features(segments, model.config, None, SOURCE)


def check_text_frames(text: str, model: Vocoder, max_frames: int, speed: float = 1.0) -> None:
    """422 when `text` spoken at `speed` would surely last more than `max_frames`: checked before Festival spends
    time on it."""
    folded = to_festival_text(text)
    digits = sum(char.isdigit() for char in folded)
    letters = sum(char.isalpha() for char in folded)
    seconds = (SECONDS_PER_LETTER * letters + SECONDS_PER_DIGIT * digits) / speed
    frames = int(seconds * model.sample_rate / model.config.features.hop_length)
    if frames > max_frames:
        message = f"text: would last at least {frames} frames ({seconds:.0f} s), more than the {max_frames} allowed"
        raise ApiError(422, "text_too_long", message, "text")


def features_from_text(
    text: str, voice: str, speaker: str | None, model: Vocoder, timeout: float, speed: float = 1.0
) -> Features:
    """Festival's analysis of `text` with `voice` at `speed`, as the feature file `vocoder frontend` would write.

    Blocking (a Festival process per call, killed after `timeout` seconds): run it in a `TextAnalysis` pool."""
    require_linguistic(model)
    try:
        festival_binary()
    except FestivalError as error:
        raise ApiError(501, "frontend_unavailable", str(error)) from None
    try:
        return analyse_text(text, voice, model.config, speaker, SOURCE, timeout, speed)
    except FestivalTimeout:  # the text's own cost, like its length: the client's to shorten
        message = f"text: Festival's analysis took longer than {timeout:g} s; send a shorter text"
        raise ApiError(422, "text_too_long", message, "text") from None
    except FestivalError as error:
        raise ApiError(422, "frontend_failed", f"text: {error}", "text") from None


class TextAnalysis:
    """Festival's own bounded pool: `workers` processes at once, `max_queue` texts waiting (beyond: `QueueFull`).

    Apart from the thread pool that parses uploads and from the synthesis queues, so slow texts delay only
    other texts."""

    def __init__(self, workers: int, max_queue: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="festival")
        self._slots = threading.BoundedSemaphore(workers + max_queue)
        self._stopped = False

    async def features(
        self, text: str, voice: str, speaker: str | None, model: Vocoder, timeout: float, speed: float = 1.0
    ) -> Features:
        """Festival's analysis, at most `timeout` seconds of it; `QueueFull` when the pool is full,
        `ShuttingDown` once stopped (a text still waiting then ends so too)."""
        if self._stopped:
            raise ShuttingDown
        if not self._slots.acquire(blocking=False):
            raise QueueFull
        try:
            work = self._executor.submit(features_from_text, text, voice, speaker, model, timeout, speed)
            work.add_done_callback(lambda _: self._slots.release())
        except BaseException:
            self._slots.release()
            raise
        try:
            return await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            given_up = task is not None and task.cancelling() > 0  # its request was cancelled, not the work
            if self._stopped and work.cancelled() and not given_up:  # dropped by `stop`
                raise ShuttingDown from None
            raise

    def stop(self) -> None:
        self._stopped = True
        self._executor.shutdown(wait=False, cancel_futures=True)
