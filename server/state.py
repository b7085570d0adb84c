"""What one app instance holds while it runs, reachable from any request through `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from vocoder_server.inference import InferenceEngine
from vocoder_server.linguistic import TextAnalysis
from vocoder_server.metrics import Metrics
from vocoder_server.registry import Registry
from vocoder_server.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    registry: Registry
    engine: InferenceEngine
    metrics: Metrics
    text_analysis: TextAnalysis


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the running app's state."""
    state: ServiceState = request.app.state.service
    return state
