"""Service settings: from `VOCODER_*` environment variables, overridden by `vocoder serve` flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vocoder.paths import bundled_models_dir
from vocoder.vocabulary import Precision


class Settings(BaseSettings):
    """Every knob of the service; the defaults suit one CPU host serving the bundled models."""

    model_config = SettingsConfigDict(env_prefix="VOCODER_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models_dir: Path = Field(
        default_factory=bundled_models_dir, description="every <name>/model.safetensors in it is served"
    )
    default_model: str = Field("teacher", description="used when a request names no model and several are loaded")
    device: str | None = Field(None, description="cpu or cuda; default: cuda when available")
    precision: Precision = Field(
        "fp32", description="a teacher's fused CPU kernel weights: fp32 is exact, fp16 and int8 are faster"
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads; default: torch's choice")
    api_key: SecretStr | None = Field(None, description="when set, /v1 requires it (X-API-Key or Bearer)")
    max_queue: int = Field(32, ge=1, description="requests waiting for a worker; beyond it: 503")
    workers: int = Field(1, ge=1, description="inference threads; each runs one batch at a time")
    max_batch: int = Field(8, ge=1, description="concurrent compatible requests generated as one padded batch")
    timeout: float = Field(120.0, gt=0, description="seconds from arrival to the end of synthesis; beyond: 504")
    max_upload_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="request body limit; beyond: 413")
    max_frames: int | None = Field(None, ge=1, description="service cap on frames per request (model's if lower)")
    naive_max_frames: int = Field(
        0, ge=0, description="frames a naive (reference) request may have; 0 turns naive generation off"
    )
    header_timeout: float = Field(10.0, gt=0, description="seconds for a request's headers to arrive; then closed")
    body_timeout: float = Field(30.0, gt=0, description="seconds for a request's body to arrive; then 408")
    keep_alive_timeout: int = Field(5, ge=1, description="seconds an idle kept-alive connection stays open")
    tts_workers: int = Field(1, ge=1, description="Festival processes at once for /v1/tts")
    tts_queue: int = Field(4, ge=0, description="texts waiting for a Festival process; beyond: 503")
    tts_timeout: float = Field(10.0, gt=0, description="seconds one Festival analysis may take; then it is killed")
    shutdown_grace: float = Field(
        5.0, ge=0, description="seconds running and queued jobs may finish once told to stop; what is left: 503"
    )
    stream_chunk_samples: int = Field(1024, ge=64, description="samples per chunk of a streamed response")
    retry_after: int = Field(2, ge=1, description="seconds a 503 asks the client to wait")
    warmup: bool = Field(True, description="run a short synthesis with every model before reporting ready")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        """`VOCODER_API_KEY=` (set but empty) must not lock every client out with a key nobody can send."""
        return None if value == "" else value
