"""Autoregressive generation: the naive reference, Fast-WaveNet queue caching (plain PyTorch, and a fused C++ step on
CPU), plus sampling strategies."""

from vocoder.generate.cpu_kernel import KernelWaveNet, fast_generator
from vocoder.generate.fast import FastWaveNet
from vocoder.generate.naive import generate_naive
from vocoder.generate.result import GenerationResult, ProgressCallback
from vocoder.generate.sampling import STRATEGIES, Sampling, SamplingError

__all__ = [
    "STRATEGIES",
    "FastWaveNet",
    "GenerationResult",
    "KernelWaveNet",
    "ProgressCallback",
    "Sampling",
    "SamplingError",
    "fast_generator",
    "generate_naive",
]
