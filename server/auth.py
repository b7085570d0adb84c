"""Optional API-key check for /v1: `X-API-Key: KEY` or `Authorization: Bearer KEY`, compared in constant time."""

from __future__ import annotations

import secrets

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from vocoder_server.errors import ApiError
from vocoder_server.state import ServiceState, get_state

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
bearer = HTTPBearer(auto_error=False)


async def require_api_key(
    state: ServiceState = Depends(get_state),
    header: str | None = Security(api_key_header),
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> None:
    """A dependency of every /v1 route; a no-op when no key is configured."""
    if state.settings.api_key is None:
        return
    expected = state.settings.api_key.get_secret_value().encode()
    offered = header or (credentials.credentials if credentials else None)
    if offered is None or not secrets.compare_digest(offered.encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required (X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
