"""Linguistic input for models conditioned on it: an uploaded HTS `.lab` file, or text through Festival.

Both build the arrays the text front end (`vocoder.frontend`) builds: per-frame question answers and positions,
and vuv from the voiced-phone question. Only text brings F0 (Festival's intonation targets): a label file has
none, so a model that reads lf0 needs a feature file or text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from server.errors import ApiError
from vocoder.api import Vocoder
from vocoder.features.featurefile import Features
from vocoder.features.linguistic import (
    LabelFileError,
    label_samples,
    linguistic_features,
    load_question_set,
    parse_labels,
)
from vocoder.frontend.features import VOICED_QUESTION, check_linguistic_config, utterance_features
from vocoder.frontend.festival import FestivalError, festival_binary, run_festival

SOURCE = "request"


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
    questions = load_question_set()
    linguistic = linguistic_features(segments, rate, hop, questions)
    vuv = linguistic[:, questions.index(VOICED_QUESTION)].copy()
    return Features(rate, hop, linguistic=linguistic, vuv=vuv, source=SOURCE)


def features_from_text(text: str, voice: str, speaker: str, model: Vocoder) -> Features:
    """Festival's analysis of `text` with `voice`, as the feature file `vocoder frontend` would write.

    Blocking (a Festival process per call): run it off the event loop."""
    require_linguistic(model)
    try:
        festival_binary()
    except FestivalError as error:
        raise ApiError(501, "frontend_unavailable", str(error)) from None
    with tempfile.TemporaryDirectory(prefix="festival-") as scratch:
        try:
            [utterance] = run_festival([text], voice, Path(scratch))
        except FestivalError as error:
            raise ApiError(422, "frontend_failed", f"text: {error}", "text") from None
    return utterance_features(utterance, model.config, speaker, SOURCE)
