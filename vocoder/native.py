"""Compiled CPU kernels: C++ sources under `vocoder/*/csrc/`, built on first use with torch's cpp_extension.

Each build is cached per machine (`-O3 -march=native`, in `vocoder.paths.kernel_cache_dir()`: the user cache
directory or $VOCODER_KERNEL_BUILD; about a minute the first time); callers that cannot get one fall back to plain
PyTorch and log why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from functools import cache
from pathlib import Path
from types import ModuleType

import torch

from vocoder.paths import kernel_cache_dir

MARCH = os.environ.get("VOCODER_KERNEL_MARCH", "native")
"""The `-march` of x86-64 builds; the test suite also builds with `x86-64-v2` (no AVX2, no AVX-512) to run the
portable code paths an older CPU gets."""


class KernelUnavailable(RuntimeError):
    """A compiled kernel cannot be built, or cannot run this model or these tensors."""


def _machine_tag() -> str:
    """A short hash of the CPU model and features: a `-march=native` build must not be reused on another CPU."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        lines = [line for line in cpuinfo if line.startswith(("model name", "flags"))]
    except OSError:
        lines = [platform.processor()]
    return hashlib.sha1("\n".join([platform.machine(), *lines[:2]]).encode()).hexdigest()[:10]


def _module_name(source: Path) -> str:
    """The extension's name: its source, the `-march` of the build and the CPU it was built for."""
    march = "" if MARCH == "native" else f"{MARCH.replace('-', '_')}_"
    return f"{source.stem}_{march}{_machine_tag()}"


def build_directory(source: Path) -> Path:
    """The cache folder of one build, one per source location as well: the checkouts and installs that share the
    user cache directory would otherwise rebuild each other's builds (torch rebuilds when a source path changes)."""
    location = hashlib.sha1(str(source.resolve().parent).encode()).hexdigest()[:8]
    return kernel_cache_dir() / _module_name(source) / location


@cache
def _build(source: Path) -> tuple[ModuleType | None, str]:
    """Compile (or load the cached build of) one source once per process: (module, "") or (None, why not)."""
    try:
        # Importing cpp_extension warns that no CUDA runtime exists; these CPU kernels need none.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        from torch.utils import cpp_extension

        name = _module_name(source)
        directory = build_directory(source)
        directory.mkdir(parents=True, exist_ok=True)
        native = [f"-march={MARCH}"] if platform.machine() in ("x86_64", "AMD64") else []
        module = cpp_extension.load(
            name=name,
            sources=[str(source)],
            extra_cflags=["-O3", "-ffp-contract=fast", *native],
            build_directory=str(directory),
            verbose=False,
        )
        return module, ""
    except Exception as error:  # any build failure (no compiler, no headers, bad flags) means: fall back
        return None, f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"


def weights_problem(tensors: list[torch.Tensor]) -> str | None:
    """Why the compiled CPU kernels cannot take a model's exported weights (not on the CPU, not float32), or None."""
    for tensor in tensors:
        if tensor.device.type != "cpu":
            return f"the model is on {tensor.device}"
        if tensor.dtype != torch.float32:
            return f"the model is {tensor.dtype}, the kernel is float32"
    return None


def load_extension(source: Path) -> ModuleType:
    """The compiled extension of `source`, or `KernelUnavailable` saying why it could not be built."""
    module, reason = _build(source)
    if module is None:
        raise KernelUnavailable(f"build of {source.name} failed ({reason})")
    return module
