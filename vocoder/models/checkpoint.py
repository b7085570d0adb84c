"""Model files: safetensors weights with the full config and training metadata in the header. No pickle.

A model is addressed by a path (a `.safetensors` file or a directory holding `model.safetensors`) or by the name
of a bundled model (`vocoder.paths.bundled_models_dir()`: models/ of the checkout, or of the installed package, or
$VOCODER_MODELS_DIR).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vocoder.atomic import atomic_path
from vocoder.config import Config, ConfigError, config_from_dict
from vocoder.errors import VocoderError
from vocoder.paths import bundled_models_dir, models_dir_origin
from vocoder.vocabulary import ModelKind

FORMAT = "wavenet-service"
FORMAT_VERSION = "1"
WEIGHTS_NAME = "model.safetensors"
MODEL_FILE_MODE = 0o644
"""Readable by every user, like the checkpoints and cards beside it: safetensors writes 0600, and a service run as
another user (the Docker image's) could not load a model bundled here."""


class CheckpointError(VocoderError):
    """A model file that cannot be loaded; the message names the file and what is wrong."""


def bundled_model_names() -> list[str]:
    root = bundled_models_dir()
    return sorted(p.parent.name for p in root.glob(f"*/{WEIGHTS_NAME}")) if root.is_dir() else []


def resolve_model_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    if (path / WEIGHTS_NAME).is_file():
        return path / WEIGHTS_NAME
    bundled = bundled_models_dir() / str(name_or_path) / WEIGHTS_NAME
    if bundled.is_file():
        return bundled
    names = ", ".join(bundled_model_names()) or "none"
    raise CheckpointError(
        f"{name_or_path}: no such model file or directory, and no bundled model of that name (bundled: {names}); "
        f"looked for {path.absolute()}, {(path / WEIGHTS_NAME).absolute()} and {bundled} ({models_dir_origin()})"
    )


def save_model(path: str | Path, model: nn.Module, config: Config, kind: ModelKind, metadata: dict[str, Any]) -> Path:
    """Write weights + config + metadata atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": json.dumps(config.model_dump(mode="json")),
        "metadata": json.dumps(metadata),
    }
    _write(path, tensors, header)
    return path


def _write(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]) -> None:
    """A model file written atomically: a temporary file renamed over `path`."""
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=header)
        temporary.chmod(MODEL_FILE_MODE)


def replace_header(path: Path, config: Config | None = None, metadata: dict[str, Any] | None = None) -> None:
    """Rewrite a model file with `config` and/or `metadata` embedded in place of its own, weights unchanged
    (atomically): for what does not change what the weights mean, such as the default sampling or the band of
    input levels it was trained on."""
    weights = read_model_file(path)[0]
    header = _header(path)
    if config is not None:
        header["config"] = json.dumps(config.model_dump(mode="json"))
    if metadata is not None:
        header["metadata"] = json.dumps(metadata)
    _write(path, weights, header)


def _header(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def read_model_header(path: Path) -> tuple[Config, str, dict[str, Any]]:
    """(config, kind, metadata) from a model file's header, without reading its weights."""
    header = _header(path)
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: header field 'format': expected {FORMAT!r}, found {header.get('format')!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: header field 'format_version': expected {FORMAT_VERSION}, found {header.get('format_version')}"
        )
    try:
        config = config_from_dict(json.loads(header["config"]), f"{path} (embedded config)")
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: header field 'config' or 'metadata' is missing or not JSON ({error})") from None
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    return config, header.get("kind", ""), metadata


def file_identity(path: Path) -> dict[str, str]:
    """What names a model file in another's provenance: its location, the SHA-256 of its bytes (a retrained model at
    the same path differs) and that of what it computes (`weights_digest`: the same for a copy bundled with another
    default sampling)."""
    return {
        "file": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "weights_sha256": weights_digest(path),
    }


def weights_digest(path: Path) -> str:
    """SHA-256 of a model file's config less its default sampling, and of every tensor (name, dtype, shape, bytes):
    what the model computes, whatever it samples with by default."""
    weights, config, kind, _ = read_model_file(path)
    digest = hashlib.sha256(json.dumps([kind, config.model_dump(mode="json", exclude={"sampling"})]).encode())
    for name in sorted(weights):
        tensor = weights[name]
        digest.update(f"{name} {tensor.dtype} {list(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], Config, str, dict[str, Any]]:
    """(weights, config, kind, metadata) from a model file, with an error naming the file if anything is off."""
    config, kind, metadata = read_model_header(path)
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    return weights, config, kind, metadata


def _check_shapes(expected: dict[str, list[int]], found: dict[str, list[int]], source: Path) -> None:
    """An error listing what is missing, unexpected or mis-shaped, if anything is."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [f"{k} {found[k]} != {v}" for k, v in expected.items() if k in found and found[k] != v]
    if missing or unexpected or misshaped:
        raise CheckpointError(
            f"{source}: weights do not match the embedded config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, mis-shaped {misshaped[:5]}"
        )


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Strict load with an error that lists what is missing, unexpected or mis-shaped."""
    expected = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    _check_shapes(expected, {name: list(tensor.shape) for name, tensor in weights.items()}, source)
    model.load_state_dict(weights)


MAX_WIDTH = 4096
"""Bounds on a model file's config (channels, feature widths, layers, classes, upsampling), far beyond any model
of this project: a tampered header cannot make the loader build something huge before its shapes are checked."""
MAX_LAYERS = 512
MAX_CLASSES = 1 << 16
MAX_SPEAKERS = 10_000


def check_config_bounds(config: Config, source: Path) -> None:
    """`CheckpointError` naming the field when the embedded config is beyond `MAX_*`."""
    widths = {f"model.{k}": v for k, v in config.model.model_dump().items() if k.endswith(("channels", "_dim"))}
    widths["features.n_mels"] = config.features.n_mels
    widths["features.linguistic_dim"] = config.features.linguistic_dim or 0
    counts = {"model.layers": config.model.layers, "model.upsample_scales": math.prod(config.model.upsample_scales)}
    if config.student is not None:
        widths.update({f"student.{k}": v for k, v in config.student.model_dump().items() if k.endswith("channels")})
        counts["student.flows"] = sum(config.student.flows)
    limits = {
        **{name: (value, MAX_WIDTH) for name, value in widths.items() if value is not None},
        **{name: (value, MAX_LAYERS) for name, value in counts.items()},
        "audio.mu": (config.audio.mu + 1, MAX_CLASSES),
        "speakers": (len(config.speakers), MAX_SPEAKERS),
    }
    for name, (value, limit) in limits.items():
        if value > limit:
            raise CheckpointError(f"{source}: embedded config field '{name}': expected at most {limit}, found {value}")


def build_model(path: Path, config: Config, factory: Callable[[Config], nn.Module]) -> nn.Module:
    """The model `config` describes, holding the file's weights. The config's bounds, and the shapes it implies
    (built on the meta device, which allocates nothing) against the file's, are checked before any allocation."""
    check_config_bounds(config, path)
    try:
        with torch.device("meta"):
            skeleton = factory(config)
        with safe_open(str(path), framework="pt") as handle:
            found = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: the embedded config does not describe a model ({error})") from None
    _check_shapes({name: list(tensor.shape) for name, tensor in skeleton.state_dict().items()}, found, path)
    weights, _, _, _ = read_model_file(path)
    model = factory(config)
    load_weights(model, weights, path)
    return model
