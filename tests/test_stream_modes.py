"""A teacher's stream runs under inference mode only while it generates: between blocks the consumer's thread keeps
its own autograd mode, and a stream closed in another thread (the garbage collector closes an abandoned one in
whichever thread it runs) leaves that thread's mode as it was. A `with torch.inference_mode()` around the `yield`s
broke both: a model built in a service thread after an abandoned stream was collected there failed with "a leaf
Variable that requires grad is being used in an in-place operation" (its `nn.init` ran with grad re-enabled)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tests.conftest import tiny_config
from vocoder.generate import CudaGraphWaveNet, FastWaveNet, KernelWaveNet, Sampling
from vocoder.models.wavenet import WaveNet


@pytest.mark.parametrize("generator", ["kernel", "fast-torch", "cuda-graph-eager"])
def test_a_stream_leaves_every_threads_autograd_mode_as_it_found_it(generator: str) -> None:
    torch.manual_seed(0)
    model = WaveNet(tiny_config()).eval()
    fast = {
        "kernel": lambda: KernelWaveNet(model),
        "fast-torch": lambda: FastWaveNet(model),
        "cuda-graph-eager": lambda: CudaGraphWaveNet(model, capture=False),
    }[generator]()
    local, speakers, sampling = torch.randn(1, 10, 400), torch.tensor([1]), Sampling(seed=1)
    stream = fast.stream(local, speakers, sampling, sampling.uniforms(1, 400), fast.allocate(local), chunk_samples=64)
    assert next(stream) == (0, 64)
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()  # the consumer's own modes

    def close_under_no_grad() -> tuple[bool, bool]:
        with torch.no_grad():
            stream.close()
            return torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(close_under_no_grad).result() == (False, False)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
