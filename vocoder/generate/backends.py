"""Which generator runs a model: the one place a backend is chosen, by name or automatically.

A teacher's fast generation has three backends, each built from the model's `export_weights`: `cpu-kernel` (the
fused C++ step, `KernelWaveNet`), `cuda-graph` (`CudaGraphWaveNet`) and `torch` (the plain PyTorch loop,
`FastWaveNet`, which runs anywhere). A student's synthesis has two: `cpu-kernel` (`KernelStudent`) and `torch`
(`TorchStudent`). `auto` picks CUDA graphs for a teacher on a GPU (the PyTorch forward for a student), the fused
kernel on CPU, and falls back to `torch` with a warning that names the reason; a backend asked for by name that
cannot run is a `VocoderError` instead.
"""

from __future__ import annotations

import logging

from vocoder.errors import VocoderError
from vocoder.generate.cpu_kernel import KernelWaveNet
from vocoder.generate.cuda_graph import CudaGraphWaveNet
from vocoder.generate.fast import FastWaveNet
from vocoder.generate.result import BlockGenerator
from vocoder.generate.student_kernel import KernelStudent, TorchStudent
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.native import KernelUnavailable
from vocoder.vocabulary import Backend, Precision, check_backend, check_precision

log = logging.getLogger(__name__)


def _on_cuda(model: WaveNet | StudentWaveNet) -> bool:
    return next(model.parameters()).device.type == "cuda"


def fast_generator(model: WaveNet, backend: Backend = "auto", precision: Precision = "fp32") -> BlockGenerator:
    """The teacher's fast generator on `backend`; `precision` is the fused CPU kernel's weights (the other
    backends compute in the model's own dtype, so an explicit one with fp16 or int8 is an error)."""
    check_backend(backend)
    check_precision(precision)
    if backend in ("torch", "cuda-graph") and precision != "fp32":
        raise VocoderError(f"precision {precision}: only the cpu-kernel backend has one; backend {backend} is fp32")
    if backend == "torch":
        return FastWaveNet(model)
    graphs = backend == "cuda-graph" or (backend == "auto" and _on_cuda(model))
    if graphs and not _on_cuda(model):
        raise VocoderError("backend cuda-graph: the model is on the CPU; load it on a CUDA device")
    try:
        return CudaGraphWaveNet(model) if graphs else KernelWaveNet(model, precision)
    except KernelUnavailable as reason:
        compiled = "CUDA graphs" if graphs else "fused CPU kernel"
        if backend != "auto":
            raise VocoderError(f"backend {backend}: the {compiled} cannot run this model ({reason})") from None
        log.warning("%s unavailable (%s); using the plain PyTorch Fast-WaveNet", compiled, reason)
        return FastWaveNet(model)


def student_generator(model: StudentWaveNet, backend: Backend = "auto") -> KernelStudent | TorchStudent:
    """The student's synthesis on `backend`: `auto` is the PyTorch forward on a GPU (one pass of wide kernels is
    what a GPU is good at) and the fused forward on CPU where it can run, else PyTorch's with a warning."""
    check_backend(backend)
    if backend == "cuda-graph":
        raise VocoderError("backend cuda-graph: a student synthesizes in one pass, with no graphs; use auto or torch")
    if backend == "torch" or (backend == "auto" and _on_cuda(model)):
        return TorchStudent(model)
    try:
        return KernelStudent(model)
    except KernelUnavailable as reason:
        if backend == "cpu-kernel":
            raise VocoderError(f"backend cpu-kernel: the fused student forward cannot run ({reason})") from None
        log.warning("fused student forward unavailable (%s); using the PyTorch forward", reason)
        return TorchStudent(model)
