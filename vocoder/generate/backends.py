"""Which generator runs a model: the one place a backend is chosen, by name or automatically.

A teacher's fast generation has four backends, each built from the model's `export_weights`: `cpu-kernel` (the
fused C++ step, `KernelWaveNet`), `cuda-graph` (`CudaGraphWaveNet`), `triton` (the persistent Triton kernel,
`TritonWaveNet`: a CUDA model, or any under `TRITON_INTERPRET=1`) and `torch` (the plain PyTorch loop,
`FastWaveNet`, which runs anywhere). A student's synthesis has two: `cpu-kernel` (`KernelStudent`) and `torch`
(`TorchStudent`). `auto` picks CUDA graphs for a teacher on a GPU (the Triton kernel for batches up to
`TRITON_AUTO_MAX_BATCH`; the PyTorch forward for a student), the fused kernel on CPU, and falls back (to CUDA
graphs, or to `torch`) with a warning that names the reason; a backend asked for by name that cannot run is a
`VocoderError` instead.
"""

from __future__ import annotations

import logging

from vocoder.errors import VocoderError
from vocoder.generate.cpu_kernel import KernelWaveNet
from vocoder.generate.cuda_graph import CudaGraphWaveNet
from vocoder.generate.fast import FastWaveNet
from vocoder.generate.result import BlockGenerator
from vocoder.generate.student_kernel import KernelStudent, TorchStudent
from vocoder.generate.triton_kernel import TritonWaveNet
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.native import KernelUnavailable
from vocoder.vocabulary import Backend, Precision, check_backend, check_precision

log = logging.getLogger(__name__)

TRITON_AUTO_MAX_BATCH = 0
"""On a CUDA model, `auto` runs batches of up to this many utterances on the Triton kernel and larger ones on CUDA
graphs: the batch sizes where the kernel is the faster of the two (`vocoder bench generation --device cuda` reports
both, scripts/gpu_check.sh). 0, CUDA graphs for every batch, until a GPU has measured them (issue #20)."""


def _on_cuda(model: WaveNet | StudentWaveNet) -> bool:
    return next(model.parameters()).device.type == "cuda"


def fast_generator(model: WaveNet, backend: Backend = "auto", precision: Precision = "fp32") -> BlockGenerator:
    """The teacher's fast generator on `backend`; `precision` is the fused CPU kernel's weights, or the Triton
    kernel's (fp32 or fp16; the other backends compute in the model's own dtype, so an explicit one with fp16 or
    int8 is an error)."""
    check_backend(backend)
    check_precision(precision)
    if backend in ("torch", "cuda-graph") and precision != "fp32":
        raise VocoderError(f"precision {precision}: only the cpu-kernel backend has one; backend {backend} is fp32")
    if backend == "triton" and precision == "int8":
        raise VocoderError("precision int8: only the cpu-kernel backend has it; backend triton is fp32 or fp16")
    if backend == "torch":
        return FastWaveNet(model)
    if backend == "triton" or (backend == "auto" and _on_cuda(model) and TRITON_AUTO_MAX_BATCH > 0):
        graphs_above = TRITON_AUTO_MAX_BATCH if backend == "auto" else None
        try:
            return TritonWaveNet(model, graphs_above, "fp16" if precision == "fp16" else "fp32")
        except KernelUnavailable as reason:
            if backend != "auto":
                raise VocoderError(f"backend triton: the Triton kernel cannot run this model ({reason})") from None
            log.warning("Triton kernel unavailable (%s); using CUDA graphs", reason)
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
    if backend in ("cuda-graph", "triton"):
        raise VocoderError(
            f"backend {backend}: a student synthesizes in one pass, with no step kernel; use auto or torch"
        )
    if backend == "torch" or (backend == "auto" and _on_cuda(model)):
        return TorchStudent(model)
    try:
        return KernelStudent(model)
    except KernelUnavailable as reason:
        if backend == "cpu-kernel":
            raise VocoderError(f"backend cpu-kernel: the fused student forward cannot run ({reason})") from None
        log.warning("fused student forward unavailable (%s); using the PyTorch forward", reason)
        return TorchStudent(model)
