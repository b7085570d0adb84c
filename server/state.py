"""What one app instance holds while it runs, reachable from any request through `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from server.inference import InferenceEngine
from server.linguistic import TextAnalysis
from server.metrics import Metrics
from server.registry import Registry
from server.settings import Settings


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
