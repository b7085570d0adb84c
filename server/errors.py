"""One JSON error shape for every failure, so clients can tell which field was wrong without parsing prose.

`{"error": {"status": 422, "code": "invalid_features", "message": "...", "field": "mel"}}`. Bad user input
(`VocoderError`) is a 422; nothing a request sends may surface as a 500 with a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vocoder.errors import VocoderError
from vocoder.features.featurefile import FeatureFileError

log = logging.getLogger("server")


class ApiError(Exception):
    """An error response: status, a stable machine-readable code, a message and the offending field if any."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


CLIENT_CLOSED = 499
"""The client left before its answer (nginx's code): counted as a client error, never as a server failure."""


def client_closed() -> ApiError:
    return ApiError(CLIENT_CLOSED, "client_closed", "the client closed the connection before the answer")


def error_response(error: ApiError) -> JSONResponse:
    body: dict[str, object] = {"status": error.status, "code": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def from_vocoder_error(error: VocoderError) -> ApiError:
    """Feature-file errors name their field; sampling errors start with it (`temperature: expected ...`)."""
    if isinstance(error, FeatureFileError):
        message = f"field '{error.field}': expected {error.expected}, found {error.found}"
        return ApiError(422, "invalid_features", message, error.field)
    text = str(error)
    head = text.split(":", 1)[0]
    return ApiError(422, "invalid_input", text, head if head.isidentifier() else None)


def _validation_error(error: RequestValidationError) -> ApiError:
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path", "header")]
    field = ".".join(location) or None
    return ApiError(422, "invalid_parameter", f"{field or 'request'}: {first.get('msg', 'invalid')}", field)


def install_error_handlers(app: FastAPI) -> None:
    # Imported here: this module is light (`json_body` and the JSON parser process import it), the engine is not.
    from vocoder_server.inference import ShuttingDown

    async def api_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error_response(error)

    async def vocoder_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, VocoderError)
        return error_response(from_vocoder_error(error))

    async def validation_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return error_response(_validation_error(error))

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(ApiError(error.status_code, code, str(error.detail), headers=error.headers))

    async def shutting_down(request: Request, _: Exception) -> JSONResponse:
        retry_after = request.app.state.service.settings.retry_after
        message = "the service is shutting down; retry (another instance, if there is one)"
        return error_response(ApiError(503, "shutting_down", message, headers={"Retry-After": str(retry_after)}))

    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return error_response(ApiError(500, "internal", "internal error; the server log has the details"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(VocoderError, vocoder_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ShuttingDown, shutting_down)
    app.add_exception_handler(Exception, unexpected)
