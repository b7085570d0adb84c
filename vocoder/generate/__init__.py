"""Autoregressive generation: the naive reference and Fast-WaveNet queue caching, plus sampling strategies."""

from vocoder.generate.fast import FastWaveNet
from vocoder.generate.naive import generate_naive
from vocoder.generate.result import GenerationResult, ProgressCallback
from vocoder.generate.sampling import STRATEGIES, Sampling, SamplingError

__all__ = [
    "STRATEGIES",
    "FastWaveNet",
    "GenerationResult",
    "ProgressCallback",
    "Sampling",
    "SamplingError",
    "generate_naive",
]
