"""The FastAPI synthesis service: `create_app(settings)` builds it; `vocoder serve` runs it under uvicorn.

`create_app` and `Settings` are imported lazily, so that a light module of the package (`json_body`, which the
JSON parser process imports) does not pull in the service and torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vocoder_server.app import create_app
    from vocoder_server.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from vocoder_server.app import create_app

        return create_app
    if name == "Settings":
        from vocoder_server.settings import Settings

        return Settings
    raise AttributeError(f"module 'vocoder_server' has no attribute {name!r}")
