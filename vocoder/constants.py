"""Bounds and defaults that the CLI shows in its help and the library enforces, defined once.

This module imports nothing: `vocoder --help` reads it without loading torch, and the API (`Sampling`), the CLI and
the service schema all take their limits from here, so the three never disagree.
"""

TOP_K_MAX = 1 << 16
"""Largest `top_k` accepted anywhere (65,536: the classes of a 16-bit mu-law; beyond a model's classes top-k is off)."""
TEMPERATURE_MIN = 1e-3
TEMPERATURE_MAX = 1e3
"""Temperatures outside [1e-3, 1e3] are argmax or uniform noise to float precision: refused rather than silently so."""

DEFAULT_GOLD_PER_KIND = 2
"""MOS export: natural references and low anchors per playlist, unless fewer utterances are tested (a gold item never
repeats)."""
