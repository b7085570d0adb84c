"""The package's named choices, each spelled once: a Literal type for signatures and schemas, the tuple of its values
for checks and messages (read from the Literal, so the two cannot disagree), and its check where a plain string
comes in from outside.

Config, feature files, the API, sampling, the trainers, the CLI and the service all import their choices from here.
Like `vocoder.constants` it imports nothing heavy, so `vocoder --help` can show the choices without loading torch.
"""

from __future__ import annotations

from typing import Literal, get_args

from vocoder.errors import VocoderError

ConditioningArray = Literal["mel", "lf0", "vuv", "linguistic"]
"""The arrays a feature file may hold and a model may read, in the order a feature file lists them."""
CONDITIONING_ARRAYS: tuple[ConditioningArray, ...] = get_args(ConditioningArray)
MATRIX_ARRAYS: tuple[ConditioningArray, ...] = ("mel", "linguistic")
"""The arrays that are `[frames, dims]` matrices; the others are `[frames]` vectors."""
F0_ARRAYS: tuple[ConditioningArray, ...] = ("lf0", "vuv")
"""The arrays that F0 analysis gives together (continuous log-F0 and the voiced flag)."""

ModelKind = Literal["teacher", "student"]
"""What a model file holds: an autoregressive teacher WaveNet or a Parallel WaveNet student."""
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
TEACHER, STUDENT = MODEL_KINDS

Method = Literal["fast", "fast-torch", "naive", "student"]
"""fast: the best available Fast-WaveNet (the fused CPU kernel where it runs); fast-torch: the plain PyTorch one;
naive: the reference; student: a student's one parallel pass."""
METHODS: tuple[Method, ...] = get_args(Method)
KIND_METHODS: dict[ModelKind, tuple[Method, ...]] = {TEACHER: ("fast", "fast-torch", "naive"), STUDENT: ("student",)}
"""What each kind of model file can do, its default first: a teacher generates sample by sample, a student in one
parallel pass."""

Strategy = Literal["sample", "argmax", "mean"]
"""How a teacher turns one step's distribution into a sample: draw from it, take its mode, or its expected value."""
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
STUDENT_SETTINGS = ("temperature", "voiced_temperature")
"""The sampling settings a Parallel WaveNet student reads: the scale of its logistic noise (Glow's temperature), in
every frame and in voiced ones; it has no per-sample distribution for the others to reshape."""

Precision = Literal["fp32", "fp16", "int8"]
"""The fused CPU kernel's weight precision: fp32 is exact against the reference, fp16 and int8 faster (the Triton
kernel takes fp32 and fp16)."""
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

Backend = Literal["auto", "cpu-kernel", "torch", "cuda-graph", "triton"]
"""Which generator runs a model (`vocoder.generate.backends`): auto, or one by name."""
BACKENDS: tuple[Backend, ...] = get_args(Backend)

AmpDtype = Literal["none", "bf16", "fp16"]
"""Training's autocast dtype on CUDA (CPU always trains in fp32)."""

Split = Literal["train", "valid", "test"]
"""The part of a feature cache an utterance belongs to."""
SPLITS: tuple[Split, ...] = get_args(Split)


def check_precision(precision: str) -> None:
    """A `VocoderError` naming the choices unless `precision` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise VocoderError(f"precision: expected one of {list(PRECISIONS)}, found {precision!r}")


def check_backend(backend: str) -> None:
    """A `VocoderError` naming the choices unless `backend` is one of BACKENDS."""
    if backend not in BACKENDS:
        raise VocoderError(f"backend: expected one of {list(BACKENDS)}, found {backend!r}")
