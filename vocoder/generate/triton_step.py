"""The persistent Fast-WaveNet kernel in Triton: one launch runs `steps` samples of every utterance of a batch.

Imported only by `TritonWaveNet` (generate/triton_kernel.py) when a model asks for it: importing triton costs a
process 0.15 GB. Whether the kernel is compiled for CUDA or run by Triton's interpreter on NumPy (the CPU tests) is
fixed when this module is imported, by `TRITON_INTERPRET`, as it is for triton's own library functions (`tl.sort`
and the reductions), which are decorated when triton is imported.

One program per utterance (grid = batch). Per sample: the previous class's embedding (plus, with LPC, the
prediction's, p_t from the signal's last `ORDER` samples rounded as `lpc.predict` rounds it), the input conv, every
gated layer (its input written to the layer's ring in global memory, then all its taps read back as one vector and
multiplied by one `[taps x channels, (filter, gate) pairs]` tile; the block's precomputed conditioning; tanh x
sigmoid; residual and skip 1x1; residual scale sqrt(0.5)), the head, and sampling in float64 with the given
uniform. Channel counts are padded to powers of two with zero weights (`TritonWaveNet`
packs them once), so padded channels stay exactly zero and no load needs a mask; padded classes get -inf logits.

State that outlives a launch lives in device tensors: the rings, the previous class id and the LPC history. Within
a program, a value stored to global memory is read back by other threads only after a `tl.debug_barrier()` (one
after each ring's write, one at the end of each sample for the LPC history), which also orders each read of a
slot before its next overwrite.
"""

from __future__ import annotations

import triton
import triton.language as tl

_add, _larger, _smaller = tl.standard._sum_combine, tl.standard._elementwise_max, tl.standard._elementwise_min
"""`tl.sum`'s, `tl.max`'s and `tl.min`'s own combine functions, for `tl.reduce` and `tl.associative_scan`: the same
reductions compiled, and under the interpreter NumPy's, without the ~1.4 ms that each call of a `@triton.jit` library
function (`tl.sum` itself) costs there (it patches triton.language anew)."""
HALF = tl.constexpr(0.7071067811865476)
"""sqrt(0.5): each layer's residual scale, as the reference's `math.sqrt(0.5)` rounds it to float32."""


@triton.jit(do_not_specialize=["start", "steps"])  # one compiled variant whatever the chunk
def wavenet_chunk(
    # weights, padded (see TritonWaveNet): embedding [classes, RP], prediction embedding [classes, RP] (LPC),
    # input taps [KP, RP, RP], input bias [RP], conv taps [layers, KP, RP, HP, 2] (filter, gate), residual
    # [layers, HP, RP] and its bias [layers, RP], skip [layers, HP, SP] and the sum of its biases [SP], head
    # [SP, SP] + [SP], [SP, CP] + [CP]; taps oldest first, past K (or INK) zero
    embedding,
    prediction_embedding,
    input_taps,
    input_bias,
    conv_taps,
    residual_weight,
    residual_bias,
    skip_weight,
    skip_bias,
    hidden_weight,
    hidden_bias,
    logits_weight,
    logits_bias,
    dilations,  # [layers] int64
    ring_offsets,  # [layers] int64: each layer's first slot in `rings`
    centres,  # [CP] float64: each class's waveform value
    thresholds,  # [MP] float32: mu_law_thresholds, padded with +inf
    # state across launches: rings [B, slots, RP] (the input conv's INK slots first), previous [B] int64,
    # history [B, OP] float32 (an LPC model's signal, sample t in slot t % ORDER)
    rings,
    previous,
    history,
    # this launch's inputs: conditioning [B, steps, layers, HP, 2], uniforms [B, steps] float64, LPC coefficients
    # [B, steps, OP] (each step's frame's); outputs ids [B, steps] int64, waveform [B, steps], logits [B, steps, CP]
    conditioning,
    uniforms,
    coefficients,
    ids,
    waveform,
    logits_out,
    start,  # the utterance's sample index of this launch's first step
    steps,
    slots,  # ring slots per utterance
    classes,
    skip_scale,
    settings,  # [2] float64: temperature, top_p (a float argument would be float32)
    top_k,
    LAYERS: tl.constexpr,
    K: tl.constexpr,
    KP: tl.constexpr,  # K and INK padded to a power of two
    INK: tl.constexpr,
    RP: tl.constexpr,
    HP: tl.constexpr,
    SP: tl.constexpr,
    CP: tl.constexpr,
    MP: tl.constexpr,
    ORDER: tl.constexpr,
    OP: tl.constexpr,
    LEVELS: tl.constexpr,  # log2(OP)
    STRATEGY: tl.constexpr,  # 0 sample, 1 argmax, 2 mean (vocabulary.STRATEGIES)
    TOP_K: tl.constexpr,
    TOP_P: tl.constexpr,
    RECORD: tl.constexpr,
):
    # Index arithmetic in int64: the interpreter checks every int32 operation for overflow (about 0.3 ms each).
    # Weight tiles' offsets are computed where they are loaded: hoisted, they would hold registers all the loop.
    b = tl.program_id(0).to(tl.int64)
    start = start.to(tl.int64)
    steps = steps.to(tl.int64)
    r = tl.arange(0, RP).to(tl.int64)
    h = tl.arange(0, HP).to(tl.int64)
    s = tl.arange(0, SP).to(tl.int64)
    c = tl.arange(0, CP).to(tl.int64)
    pair = tl.arange(0, 2).to(tl.int64)  # (filter, gate)
    # A conv's taps, oldest first, as one vector: entry e is channel e % RP of tap e // RP (taps past K are zero).
    e = tl.arange(0, KP * RP).to(tl.int64)
    tap = e // RP
    column = e % RP
    back = K - 1 - tap  # how many dilations back each tap reads
    ring = rings + b * slots * RP
    temperature = tl.load(settings)
    top_p = tl.load(settings + 1)
    mu_thresholds = tl.load(thresholds + tl.arange(0, MP))
    last = tl.load(previous + b)
    for i in range(steps):
        t = start + i
        row = b * steps + i
        x = tl.load(embedding + last * RP + r)
        if ORDER > 0:
            o = tl.arange(0, OP)
            recent = tl.load(history + b * OP + (t + ORDER * OP - 1 - o) % ORDER, mask=o < ORDER, other=0.0)
            terms = tl.load(coefficients + row * OP + o) * recent  # newest first, zero-padded to OP terms
            for level in tl.static_range(LEVELS):  # halves added pairwise, as lpc.predict adds them
                terms = tl.reduce(tl.reshape(terms, (2, OP >> (level + 1))), 0, _add)
            prediction = tl.reduce(terms, 0, _add)
            predicted = tl.reduce((mu_thresholds <= prediction).to(tl.int64), 0, _add)
            x += tl.load(prediction_embedding + predicted * RP + r)
        # the input conv (dilation 1) over its ring, the newest input written first
        tl.store(ring + (t % INK) * RP + r, x)
        tl.debug_barrier()
        taps = tl.load(ring + ((t + 1 + tap) % INK) * RP + column, mask=tap < INK, other=0.0)
        x = tl.load(input_bias + r) + tl.reduce(
            taps[:, None] * tl.load(input_taps + e[:, None] * RP + r[None, :]), 0, _add
        )
        skip = tl.load(skip_bias + s)  # every layer's skip bias, summed
        for layer in range(LAYERS):
            dilation = tl.load(dilations + layer)
            length = (K - 1) * dilation + 1
            layer_ring = ring + tl.load(ring_offsets + layer) * RP
            tl.store(layer_ring + (t % length) * RP + r, x)
            tl.debug_barrier()
            slot = (t + length - back * dilation) % length
            taps = tl.load(layer_ring + slot * RP + column, mask=tap < K, other=0.0)
            given = tl.load(conditioning + (row * LAYERS + layer) * 2 * HP + h[:, None] * 2 + pair[None, :])
            pairs = e[:, None, None] * (2 * HP) + h[None, :, None] * 2 + pair[None, None, :]  # [taps, out, (f, g)]
            weights = tl.load(conv_taps + layer * KP * RP * 2 * HP + pairs)
            gates = given + tl.reduce(taps[:, None, None] * weights, 0, _add)
            filter_part, gate_part = tl.split(gates)
            # tanh and sigmoid from exp(-|v|) and exp(-v) (no overflow; tanh's absolute error ~1e-7)
            decay = tl.exp(-2.0 * tl.abs(filter_part))
            tanh = (1.0 - decay) / (1.0 + decay)
            gated = tl.where(filter_part < 0, -tanh, tanh) / (1.0 + tl.exp(-gate_part))
            residual = tl.load(residual_bias + layer * RP + r) + tl.reduce(
                gated[:, None] * tl.load(residual_weight + layer * HP * RP + h[:, None] * RP + r[None, :]), 0, _add
            )
            skip += tl.reduce(
                gated[:, None] * tl.load(skip_weight + layer * HP * SP + h[:, None] * SP + s[None, :]), 0, _add
            )
            x = (x + residual) * HALF
        hidden = tl.maximum(skip * skip_scale, 0.0)
        hidden = tl.load(hidden_bias + s) + tl.reduce(
            hidden[:, None] * tl.load(hidden_weight + s[:, None] * SP + s[None, :]), 0, _add
        )
        hidden = tl.maximum(hidden, 0.0)
        logits = tl.load(logits_bias + c) + tl.reduce(
            hidden[:, None] * tl.load(logits_weight + s[:, None] * CP + c[None, :]), 0, _add
        )
        logits = tl.where(c < classes, logits, float("-inf"))
        if RECORD:
            tl.store(logits_out + row * CP + c, logits)
        # Sampling.choose in float64
        if STRATEGY == 1:
            chosen = tl.argmax(logits, 0)
            value = tl.load(centres + chosen).to(tl.float32)
        else:
            scaled = logits.to(tl.float64) / temperature
            if TOP_K:
                kth = tl.reduce(tl.where(c == top_k - 1, tl.sort(scaled, descending=True), float("-inf")), 0, _larger)
                scaled = tl.where(scaled < kth, float("-inf"), scaled)
            probs = tl.exp(scaled - tl.reduce(scaled, 0, _larger))
            probs = probs / tl.reduce(probs, 0, _add)
            if TOP_P:
                # The smallest prefix of the classes by descending probability whose mass reaches top_p: `kept`
                # of them, down to probability `smallest`; of several classes equal to it, the lowest ids first.
                ranked = tl.sort(probs, descending=True)
                before = tl.associative_scan(ranked, 0, _add) - ranked
                kept_ranks = before < top_p
                kept = tl.reduce(kept_ranks.to(tl.int32), 0, _add)
                smallest = tl.reduce(tl.where(kept_ranks, ranked, float("inf")), 0, _smaller)
                above = probs > smallest
                tied = probs == smallest
                tie_rank = tl.associative_scan(tied.to(tl.int32), 0, _add) - 1
                keep = above | (tied & (tie_rank < kept - tl.reduce(above.to(tl.int32), 0, _add)))
                probs = tl.where(keep, probs, 0.0)
                probs = probs / tl.reduce(probs, 0, _add)
            if STRATEGY == 2:
                value = tl.reduce(probs * tl.load(centres + c), 0, _add).to(tl.float32)
                chosen = tl.reduce((mu_thresholds <= value).to(tl.int32), 0, _add)
            else:
                cdf = tl.associative_scan(probs, 0, _add)
                target = tl.load(uniforms + row) * tl.reduce(cdf, 0, _larger)
                chosen = tl.minimum(tl.reduce((cdf <= target).to(tl.int32), 0, _add), classes - 1)
                value = tl.load(centres + chosen).to(tl.float32)
        if ORDER > 0:  # the excitation drawn; the signal (prediction plus it, clipped) kept and fed back
            value = tl.minimum(tl.maximum(prediction + value, -1.0), 1.0)
            chosen = tl.reduce((mu_thresholds <= value).to(tl.int32), 0, _add)
            tl.store(history + b * OP + t % ORDER, value)
        last = chosen.to(tl.int64)
        tl.store(ids + row, last)
        tl.store(waveform + row, value)
        tl.debug_barrier()
    tl.store(previous + b, last)
