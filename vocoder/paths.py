"""Where the package finds its files: recipes, bundled models and the compiled-kernel cache.

The same code runs from a checkout (editable install, `make install`) and from an installed wheel. pyproject.toml
installs configs/ as `vocoder/recipes/` and models/ as `vocoder/bundled_models/`; in a checkout they stay beside
`vocoder/`. Nothing here depends on the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE = Path(__file__).resolve().parent

MODELS_ENV = "VOCODER_MODELS_DIR"
"""Names the folder of bundled models (`<name>/model.safetensors`) instead of those shipped with the package."""

KERNELS_ENV = "VOCODER_KERNEL_BUILD"
"""Names the folder compiled kernels are cached in instead of the user cache directory."""


def _shipped(installed: str, checkout: str) -> Path:
    """A folder shipped with the package: its installed copy inside the package, else the checkout's own."""
    inside = PACKAGE / installed
    return inside if inside.is_dir() else PACKAGE.parent / checkout


def recipes_dir() -> Path:
    """The shipped recipes (configs/ of the checkout)."""
    return _shipped("recipes", "configs")


def bundled_models_dir() -> Path:
    """The folder of bundled models: $VOCODER_MODELS_DIR when set, else the models shipped with the package."""
    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else _shipped("bundled_models", "models")


def models_dir_origin() -> str:
    """How `bundled_models_dir()` was chosen, for error messages that say where a model was looked for."""
    return f"${MODELS_ENV}" if os.environ.get(MODELS_ENV) else f"shipped with the package; ${MODELS_ENV} overrides"


def kernel_cache_dir() -> Path:
    """Where compiled kernels are cached: $VOCODER_KERNEL_BUILD, else the user cache directory ($XDG_CACHE_HOME or
    ~/.cache on Linux), so an installed package never writes beside its own files."""
    override = os.environ.get(KERNELS_ENV)
    return Path(override) if override else platformdirs.user_cache_path("wavenet-service") / "kernels"
