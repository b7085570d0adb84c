"""wavenet-service: a conditional WaveNet vocoder with Fast-WaveNet generation.

`vocoder.load(name_or_path)` is the entry point; it is imported lazily so that light modules (configs, feature
files) do not pull in the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vocoder.api import Vocoder, load

__all__ = ["Vocoder", "load"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in __all__:
        from vocoder import api

        return getattr(api, name)
    raise AttributeError(f"module 'vocoder' has no attribute {name!r}")
