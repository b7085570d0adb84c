"""The FastAPI synthesis service: `create_app(settings)` builds it; `vocoder serve` runs it under uvicorn."""

from vocoder_server.app import create_app
from vocoder_server.settings import Settings

__all__ = ["Settings", "create_app"]
