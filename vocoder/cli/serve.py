"""`vocoder serve`: run the FastAPI synthesis service under uvicorn.

Every flag has a `VOCODER_*` environment variable (see docs/SERVICE.md); a flag given wins over the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vocoder.cli.app import app
from vocoder.errors import VocoderError


@app.command()
def serve(
    host: str | None = typer.Option(None, help="interface to listen on [env VOCODER_HOST, default 127.0.0.1]"),
    port: int | None = typer.Option(None, help="TCP port [VOCODER_PORT, default 8000]"),
    models: Path | None = typer.Option(None, help="folder of <name>/model.safetensors [VOCODER_MODELS_DIR]"),
    api_key: str | None = typer.Option(None, help="require this key on /v1 [VOCODER_API_KEY]"),
    max_queue: int | None = typer.Option(None, min=1, help="requests waiting for a worker; then 503"),
    timeout: float | None = typer.Option(None, min=0.001, help="seconds per request; then 504"),
    workers: int | None = typer.Option(None, min=1, help="inference threads"),
    max_batch: int | None = typer.Option(None, min=1, help="concurrent requests generated as one batch"),
    max_upload_bytes: int | None = typer.Option(None, min=1024, help="request body limit; then 413"),
    max_frames: int | None = typer.Option(None, min=1, help="frames per request (model's limit if lower)"),
    device: str | None = typer.Option(None, help="cpu or cuda [default: cuda when available]"),
    precision: str | None = typer.Option(None, help="CPU kernel weights: fp32, fp16 or int8 [default fp32]"),
    torch_threads: int | None = typer.Option(None, min=1, help="torch intra-op threads"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve the models of a folder over HTTP: a web page at /, POST /v1/synthesize (feature or label files),
    POST /v1/vocode (a recording: copy synthesis), POST /v1/tts (text, by default with the one model that reads
    linguistic features), POST /v1/audio/speech (OpenAI's shape), GET /v1/voices, GET /v1/models, /healthz, /readyz,
    /metrics."""
    from pydantic import ValidationError

    from vocoder.api import resolve_device
    from vocoder_server import Settings, create_app
    from vocoder_server.serving import ServiceServer, service_config

    flags: dict[str, Any] = {
        "host": host,
        "port": port,
        "models_dir": models,
        "api_key": api_key,
        "max_queue": max_queue,
        "timeout": timeout,
        "workers": workers,
        "max_batch": max_batch,
        "max_upload_bytes": max_upload_bytes,
        "max_frames": max_frames,
        "device": device,
        "precision": precision,
        "torch_threads": torch_threads,
    }
    try:
        settings = Settings(**{key: value for key, value in flags.items() if value is not None})
    except ValidationError as error:  # a bad VOCODER_* variable: one line, like any other bad input
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise VocoderError(f"service settings: {problems}") from None
    resolve_device(settings.device)  # before serving: a service with no model to serve is no service
    server = ServiceServer(service_config(create_app(settings), settings, log_level))
    server.run()
    if not server.started:  # as uvicorn.run: the port was taken, or the application failed to start
        raise typer.Exit(3)
