"""Fast-WaveNet generation on CUDA as one persistent Triton kernel (nv-wavenet's design): one launch per block.

CUDA graphs (`CudaGraphWaveNet`) replay ~300 dependent tiny kernels per sample, and a GPU mostly waits between them.
Here one program per utterance runs a whole block of samples inside one launch (generate/triton_step.py): the
embedding, the input conv, every gated layer, the head and the project's sampling in float64 with the given
uniforms, and an LPC model's prediction and signal. State that outlives a launch (every layer's ring, the previous
class id, the LPC history) lives in device tensors, so a stream is a sequence of launches, one per block of
`Conditioning` (upsampled, projected, and its uniforms and LPC coefficients made, when generation reaches it), as
`FastWaveNet` reads it.

The weights are `FastWaveNet`'s arrangement of the model's `export_weights` (nothing else of the model),
zero-padded once to power-of-two channel counts. `precision="fp16"` stores the matrices in half precision (half the
bytes a step reads; embeddings, biases and every sum stay float32): logits within `FP16_TOLERANCE` of the largest
|logit| on the same inputs (tested), so samples are no longer the reference's. With fp32 weights the samples are
the reference's under the same
uniforms (logits to float32 rounding: products summed in the kernel's order); the sums of probabilities run in a
different order too, which moves a sample only where a draw or the top-p cut falls within float64 rounding of a
class boundary. Of several classes of exactly equal probability across the top-p cut, the lowest ids are kept;
`Sampling` keeps whichever torch's sort puts first (the C++ kernel asks torch in that case; a kernel cannot).

The kernel runs on a CUDA model, or anywhere under Triton's interpreter (`TRITON_INTERPRET=1` set before triton is
imported: how the CPU test suite checks it, at about 10 ms per sample of the tiny test models). Importing triton is
deferred to the first `TritonWaveNet`: it costs a process 0.15 GB.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.nn import functional as F

from vocoder.audio import mu_law_bin_centres, mu_law_thresholds
from vocoder.generate.cuda_graph import CudaGraphWaveNet
from vocoder.generate.fast import BLOCK_ELEMENTS
from vocoder.generate.result import BlockGenerator, GenerationResult
from vocoder.generate.sampling import Sampling, StepTemperatures, Uniforms
from vocoder.models.conditioning import Conditioning, Predictors
from vocoder.models.step_weights import StepWeights
from vocoder.models.wavenet import WaveNet
from vocoder.native import KernelUnavailable
from vocoder.vocabulary import STRATEGIES, Precision

log = logging.getLogger(__name__)

FP16_TOLERANCE = 1e-3
"""Stated bound on max |logits(fp16 weights) - logits(float32 model)| on the same inputs, relative to max |logits|
(the fused CPU kernel's fp16 bound: tests/test_cpu_kernel.py)."""
NUM_WARPS = 8
"""Warps per program (one utterance): the GPU run's first tuning knob (scripts/gpu_check.sh). Compiled for sm_90
here (no GPU): at 8 warps the seed-size kernel holds 182 registers a thread and spills none (demo teacher 128); at
4 it spills (255 registers and 408 bytes of stack)."""
NUM_STAGES = 1
"""No software pipelining: a load prefetched into an earlier iteration would read a ring slot before the store (and
barrier) that writes it."""
# An LPC model's kernel is compiled without contracting a product and a sum into one FMA (`enable_fp_fusion`): the
# prediction must round each product to float32 before the pairwise sums, as `lpc.predict` does, or the signal
# drifts from the reference's by float32 roundings. It costs the whole kernel its FMAs (the GPU run measures it).


def _power_of_two(n: int) -> int:
    """The smallest power of two >= n (Triton's block shapes)."""
    return 1 << max(0, n - 1).bit_length()


def _padded(tensor: torch.Tensor, *sizes: int, value: float = 0.0) -> torch.Tensor:
    """`tensor` with its last `len(sizes)` dimensions padded at the end to `sizes` (with `value`), contiguous."""
    pad: list[int] = []
    for size, have in zip(reversed(sizes), reversed(tensor.shape[-len(sizes) :]), strict=True):
        pad += [0, size - have]
    return F.pad(tensor, pad, value=value).contiguous()


def unsupported_reason(weights: StepWeights) -> str | None:
    """Why the Triton kernel cannot run a model with these exported weights, or None if it can."""
    for tensor in weights.tensors:
        if tensor.dtype != torch.float32:
            return f"the model is {tensor.dtype}, the kernel is float32"
    if len(set(weights.layers.kernel_sizes)) > 1:
        return f"its layers' kernel sizes differ ({sorted(set(weights.layers.kernel_sizes))}); the kernel takes one"
    return None


def _load_kernel() -> tuple[object, bool]:
    """(the kernel, whether Triton's interpreter runs it), or `KernelUnavailable` saying why it cannot run."""
    try:
        import triton

        from vocoder.generate import triton_step
    except (ImportError, AttributeError) as error:  # no triton, or one without the library functions used
        raise KernelUnavailable(f"triton cannot be imported ({error})") from None
    interpreted = not isinstance(triton_step.wavenet_chunk, triton.runtime.JITFunction)
    if interpreted != (not isinstance(triton.language.sort, triton.runtime.JITFunction)):
        raise KernelUnavailable("TRITON_INTERPRET changed after triton was imported: set it before anything imports it")
    return triton_step.wavenet_chunk, interpreted


class TritonWaveNet(BlockGenerator):
    """A WaveNet's weights packed for the persistent Triton kernel. Same interface as `FastWaveNet`; `generate` is
    reentrant (state lives in each call). `graphs_above`: batches of more utterances go to CUDA graphs (what
    `fast_generator`'s `auto` uses where those are faster); None runs every batch here. `precision`: the matrices'
    dtype, fp32 or fp16."""

    def __init__(self, model: WaveNet, graphs_above: int | None = None, precision: Precision = "fp32") -> None:
        if precision not in ("fp32", "fp16"):
            raise KernelUnavailable(f"precision {precision}: the Triton kernel's weights are fp32 or fp16")
        self.precision = precision
        self.fallback = CudaGraphWaveNet(model)
        packed = self.fallback.fallback
        self.weights = w = packed.weights
        self.graphs_above = graphs_above
        reason = unsupported_reason(w)
        if reason is not None:
            raise KernelUnavailable(reason)
        self._kernel, self.interpreted = _load_kernel()
        device = w.embedding.device
        if device.type != "cuda" and not self.interpreted:
            raise KernelUnavailable(
                f"the model is on {device}: Triton compiles for CUDA (TRITON_INTERPRET=1, set before triton is "
                "imported, runs it on the CPU, slowly)"
            )
        self._packed = packed
        layers = w.layers
        residual, half, skip, classes = w.residual_channels, w.gate_channels // 2, w.skip_channels, w.classes
        self.rp, self.hp, self.sp, self.cp = (_power_of_two(n) for n in (residual, half, skip, classes))
        self.kernel_size, self.input_kernel = layers.kernel_sizes[0], w.input_kernel_size
        self.order = w.lpc_order
        self.op = _power_of_two(max(1, self.order))
        rp, hp, sp, cp = self.rp, self.hp, self.sp, self.cp
        count, k, ink = len(layers.dilations), self.kernel_size, self.input_kernel
        self.kp = kp = _power_of_two(max(k, ink))
        lengths = [(k - 1) * dilation + 1 for dilation in layers.dilations]
        offsets = [ink + sum(lengths[:index]) for index in range(count)]
        self.slots = ink + sum(lengths)
        residual_skip = layers.residual_skip
        conv_taps = torch.stack(list(layers.conv_taps)).view(count, k, residual, 2, half).transpose(-1, -2)
        embedding = _padded(w.embedding, classes, rp)
        matrix = torch.float16 if precision == "fp16" else torch.float32
        self._tensors = [
            embedding,
            embedding if w.prediction_embedding is None else _padded(w.prediction_embedding, classes, rp),
            _padded(w.input_taps.view(ink, residual, residual), kp, rp, rp).to(matrix),
            _padded(w.input_bias, rp),
            _padded(conv_taps, kp, rp, hp, 2).to(matrix),
            _padded(residual_skip[:, :, :residual], hp, rp).to(matrix),
            _padded(layers.residual_skip_bias[:, :residual], rp),
            _padded(residual_skip[:, :, residual:], hp, sp).to(matrix),
            _padded(layers.residual_skip_bias[:, residual:].sum(0), sp),
            _padded(w.head_hidden, sp, sp).to(matrix),
            _padded(w.head_hidden_bias, sp),
            _padded(w.head_logits, sp, cp).to(matrix),
            _padded(w.head_logits_bias, cp),
            torch.tensor(layers.dilations, dtype=torch.int64, device=device),
            torch.tensor(offsets, dtype=torch.int64, device=device),
            _padded(mu_law_bin_centres(w.mu, torch.float64), cp).to(device),
            _padded(mu_law_thresholds(w.mu), _power_of_two(w.mu), value=float("inf")).to(device),
        ]

    def allocate(self, local: torch.Tensor | Conditioning, record_logits: bool = False) -> GenerationResult:
        return self._packed.allocate(local, record_logits)

    def _stream(
        self,
        local: Conditioning,
        speaker_ids: torch.Tensor | None,
        sampling: Sampling,
        uniforms: Uniforms,
        result: GenerationResult,
        chunk_samples: int | None,
        lpc: Predictors | None,
        temperatures: StepTemperatures | None,
    ) -> Iterator[tuple[int, int]]:
        """One launch per block; the first launch of a compiled kernel that fails (a compiler or driver that
        refuses it) hands the whole stream to CUDA graphs, with a log line. The kernel takes one temperature for
        all steps: a voicing-tied sampling's per-step temperatures go to the CUDA graphs too."""
        batch, _, steps = local.shape
        if temperatures is not None or (self.graphs_above is not None and batch > self.graphs_above):
            yield from self.fallback.stream(
                local, speaker_ids, sampling, uniforms, result, chunk_samples, lpc, temperatures
            )
            return
        w, packed, device = self.weights, self._packed, local.device
        layers, half = len(packed.convs), w.gate_channels // 2
        rings = torch.zeros(batch, self.slots, self.rp, device=device)
        previous = torch.full((batch,), w.start_id, dtype=torch.long, device=device)
        history = torch.zeros(batch, self.op, device=device)
        layer_bias = packed.layer_bias(speaker_ids, batch)
        argmax = sampling.strategy == "argmax"  # the mode of the raw logits: no reshaping
        top_k = 0 if argmax or sampling.top_k is None or sampling.top_k >= w.classes else sampling.top_k
        top_p = 1.0 if argmax or sampling.top_p is None else sampling.top_p
        settings = torch.tensor([sampling.temperature, top_p], dtype=torch.float64, device=device)
        block = max(1, BLOCK_ELEMENTS // (batch * layers * w.gate_channels))
        if chunk_samples is not None:
            block = min(block, chunk_samples)
        for start in range(0, steps, block):
            stop = min(steps, start + block)
            count = stop - start
            conditioning = packed.block_conditioning(local.block(start, stop), layer_bias)
            conditioning = _padded(conditioning.view(batch, count, layers, 2, half).transpose(-1, -2), self.hp, 2)
            draws = uniforms.block(start, stop).to(device, torch.float64).contiguous()
            coefficients = draws  # read only by an LPC model's kernel
            if lpc is not None:  # `[B, count, OP]`
                coefficients = _padded(lpc.per_sample(start, stop, device), self.op)
            ids = torch.empty(batch, count, dtype=torch.long, device=device)
            waveform = torch.empty(batch, count, device=device)
            logits = torch.empty(batch, count, self.cp, device=device) if result.logits is not None else waveform
            try:
                self._kernel[(batch,)](  # type: ignore[index]
                    *self._tensors, rings, previous, history, conditioning, draws, coefficients,
                    ids, waveform, logits, start, count, self.slots, w.classes, w.skip_scale, settings, top_k,
                    LAYERS=layers, K=self.kernel_size, KP=self.kp, INK=self.input_kernel,
                    RP=self.rp, HP=self.hp, SP=self.sp, CP=self.cp, MP=_power_of_two(w.mu),
                    ORDER=self.order, OP=self.op, LEVELS=self.op.bit_length() - 1,
                    STRATEGY=STRATEGIES.index(sampling.strategy), TOP_K=top_k > 0, TOP_P=top_p < 1,
                    RECORD=result.logits is not None, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
                    enable_fp_fusion=not self.order,
                )  # fmt: skip
            except Exception as error:  # a compiler or driver refusing it: graphs compute the same
                if start > 0 or self.interpreted:  # the interpreter is a test tool: its errors are bugs to see
                    raise
                log.warning("Triton kernel failed (%s); using CUDA graphs", error)
                yield from self.fallback.stream(local, speaker_ids, sampling, uniforms, result, chunk_samples, lpc)
                return
            result.ids[:, start:stop] = ids
            result.waveform[:, start:stop] = waveform
            if result.logits is not None:
                result.logits[:, start:stop] = logits[:, :, : w.classes]
            yield start, stop
