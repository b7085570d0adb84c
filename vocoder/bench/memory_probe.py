"""One measurement of `vocoder bench memory` (vocoder/bench/memory.py), in a fresh process.

Peak RSS only grows within a process, so each (model, length) is measured in its own. The bench runs this file's
source with `python -c` in the checkout being measured, so it uses only what every version has: `vocoder.load`,
`Vocoder.features`, `synthesize_stream` and `synthesize`. Reads a JSON request from argv, prints a JSON result.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time

import numpy as np

import vocoder

WARM_UP_SECONDS = 1.0
"""A short utterance streamed first, so kernels, threads and the allocator are set up before the measurement."""


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def tiled(features: object, frames: int) -> object:
    """`features` with every array repeated along time to `frames` frames."""
    arrays = {name: np.take(array, np.arange(frames) % len(array), axis=0) for name, array in features.arrays().items()}
    return dataclasses.replace(features, **arrays)


def measure(request: dict[str, object]) -> dict[str, float]:
    """Stream `seconds` of the example (the first chunk timed, then `stream_seconds` of audio) or, with mode
    `whole`, synthesize all of it; the peak RSS of the process either way."""
    model = vocoder.load(str(request["model"]), device="cpu")
    features = model.features(str(request["example"]))
    frames_per_second = model.sample_rate / model.config.features.hop_length
    chunk = int(request["chunk_samples"])
    warm_up = model.synthesize_stream(tiled(features, round(WARM_UP_SECONDS * frames_per_second)))
    for _ in range(4):
        next(warm_up)
    warm_up.close()
    result = {"baseline_rss_gb": peak_rss_gb()}
    utterance = tiled(features, round(float(request["seconds"]) * frames_per_second))
    started = time.perf_counter()
    if request["mode"] == "whole":
        model.synthesize(utterance, seed=0)
        result["whole_s"] = time.perf_counter() - started
    else:
        chunks = model.synthesize_stream(utterance, chunk_samples=chunk)
        streamed = len(next(chunks))
        result["first_chunk_s"] = time.perf_counter() - started
        wanted = float(request["stream_seconds"]) * model.sample_rate
        for piece in chunks:
            streamed += len(piece)
            if streamed >= wanted:
                break
        chunks.close()
        result["streamed_s"] = streamed / model.sample_rate
    result["peak_rss_gb"] = peak_rss_gb()
    return result


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
