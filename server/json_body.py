"""JSON request bodies: validated against their schemas (`parse_body`), a feature body turned into `Features`.

Apart from `uploads` and light to import (pydantic, numpy, the feature file; no torch, no models): `JsonParser`'s
process runs `parse_features_apart` and imports only this module, 0.4 s of CPU where the service's modules took
2.3 s, and none of their memory."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from vocoder.features.featurefile import Features
from vocoder.vocabulary import CONDITIONING_ARRAYS
from vocoder_server.errors import ApiError
from vocoder_server.schemas import FeaturesBody

Body = TypeVar("Body", bound=BaseModel)
SOURCE = "request"
"""The source that features from a request name (in errors and logs)."""


def parse_body(schema: type[Body], body: bytes) -> Body:
    """Validate a JSON body; a 422 names the first offending field (`body` when the JSON itself is bad)."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(422, "invalid_body", f"{field}: {first['msg']}", field) from None


def features_from_json(body: bytes) -> Features:
    parsed = parse_body(FeaturesBody, body)
    arrays = {}
    for name in CONDITIONING_ARRAYS:
        values = getattr(parsed, name)
        if values is None:
            continue
        try:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf, which validation names
                arrays[name] = np.asarray(values, dtype=np.float32)
        except ValueError:
            raise ApiError(422, "invalid_features", f"{name}: rows of different lengths", name) from None
    return Features(parsed.sample_rate, parsed.hop_length, speaker=parsed.speaker, source=SOURCE, **arrays)


def parse_features_apart(body: bytes) -> Features | tuple[int, str, str, str | None]:
    """`features_from_json` in the parser process; an `ApiError` comes back as its fields (it does not pickle)."""
    try:
        return features_from_json(body)
    except ApiError as error:
        return error.status, error.code, error.message, error.field
