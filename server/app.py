"""The application factory: one `FastAPI` per `Settings`, owning its models, workers and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from vocoder import __version__
from vocoder_server.errors import install_error_handlers
from vocoder_server.inference import InferenceEngine
from vocoder_server.linguistic import TextAnalysis
from vocoder_server.metrics import Metrics
from vocoder_server.registry import Registry
from vocoder_server.routes import router
from vocoder_server.settings import Settings
from vocoder_server.state import ServiceState
from vocoder_server.uploads import JSON_PARSER

log = logging.getLogger("server")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; models load in the background when it starts (lifespan), workers start with it."""
    settings = settings or Settings()
    metrics = Metrics()
    state = ServiceState(
        settings=settings,
        registry=Registry(settings.models_dir, settings.device, settings.precision),
        engine=InferenceEngine(metrics, settings.workers, settings.max_queue, settings.max_batch),
        metrics=metrics,
        text_analysis=TextAnalysis(settings.tts_workers, settings.tts_queue),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        state.engine.start()
        loading = asyncio.create_task(asyncio.to_thread(state.registry.load_all, settings.warmup))
        parser = asyncio.create_task(asyncio.to_thread(JSON_PARSER.start))  # large JSON bodies' process
        log.info("serving models from %s", settings.models_dir)
        try:
            yield
        finally:
            state.text_analysis.stop()
            await asyncio.to_thread(state.engine.stop)
            await loading
            await parser
            await asyncio.to_thread(JSON_PARSER.stop)  # its process must not outlive the service

    app = FastAPI(
        title="wavenet-service",
        version=__version__,
        description="Conditional WaveNet vocoder: feature files to audio. See docs/SERVICE.md.",
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    app.add_middleware(metrics.middleware)  # type: ignore[arg-type]
    app.include_router(router)
    return app
