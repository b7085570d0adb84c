"""Autoregressive generation: the naive reference, Fast-WaveNet queue caching (plain PyTorch, a fused C++ step on CPU,
CUDA graphs or a persistent Triton kernel on a GPU), plus sampling strategies; and the Parallel WaveNet student's
one-pass synthesis (a fused C++ forward on CPU)."""

from vocoder.generate.backends import fast_generator, student_generator
from vocoder.generate.cpu_kernel import KernelWaveNet
from vocoder.generate.cuda_graph import CudaGraphWaveNet
from vocoder.generate.fast import FastWaveNet
from vocoder.generate.naive import generate_naive
from vocoder.generate.result import GenerationResult, ProgressCallback
from vocoder.generate.sampling import Sampling, SamplingError, StepTemperatures
from vocoder.generate.student_kernel import KernelStudent, TorchStudent
from vocoder.generate.triton_kernel import TritonWaveNet

__all__ = [
    "CudaGraphWaveNet",
    "FastWaveNet",
    "GenerationResult",
    "KernelStudent",
    "KernelWaveNet",
    "ProgressCallback",
    "Sampling",
    "SamplingError",
    "StepTemperatures",
    "TorchStudent",
    "TritonWaveNet",
    "fast_generator",
    "generate_naive",
    "student_generator",
]
