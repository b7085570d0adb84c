"""Load test of the synthesis service on loopback: latency percentiles, real-time factor and throughput.

Starts `vocoder serve` itself (on 127.0.0.1, a free port) with `--models DIR`, or with a randomly initialised
teacher of a config's shape (`--random seed_size`), or targets a running service (`--url`). At each client
count, every client sends `--requests` requests one after another, each a random feature file of `--seconds`
seconds of audio; `--compare-batching` runs every level twice, with batching off (max batch 1) and on.

    .venv/bin/python benchmarks/load.py --random seed_size --clients 1 4 16 --compare-batching

Figures: latency p50/p99 (request sent to whole response received), real-time factor (p50 of latency / audio
duration: below 1 is faster than real time) and throughput (seconds of audio served per wall-clock second).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    target.add_argument("--models", type=Path, help="folder of <name>/model.safetensors to serve")
    target.add_argument("--random", metavar="CONFIG", help="serve a random teacher of this config's shape")
    parser.add_argument("--model", help="model to request (default: the first listed)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=4, help="requests per client per level")
    parser.add_argument("--seconds", type=float, default=0.25, help="audio seconds per request")
    parser.add_argument("--max-batch", type=int, default=8, help="the service's max batch (when started here)")
    parser.add_argument("--compare-batching", action="store_true", help="also run with max batch 1")
    parser.add_argument("--threads", type=int, help="torch threads of the started service")
    parser.add_argument("--api-key", default=os.environ.get("VOCODER_API_KEY"), help="X-API-Key to send")
    parser.add_argument("--json", action="store_true", help="print one JSON object per level")
    args = parser.parse_args()
    if args.url and args.compare_batching:
        parser.error("--compare-batching starts the service itself: use --models or --random")
    return args


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def random_models_dir(config_name: str, root: Path) -> Path:
    """A folder holding one randomly initialised teacher named `teacher` (speed does not depend on training)."""
    import torch

    from vocoder.config import load_config
    from vocoder.models.checkpoint import save_model
    from vocoder.models.wavenet import WaveNet

    torch.manual_seed(0)
    config = load_config(config_name)
    save_model(root / "teacher" / "model.safetensors", WaveNet(config), config, "teacher", {"random": True})
    return root


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"vocoder serve exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {seconds:.0f} s")


@contextmanager
def service(models: Path, max_batch: int, threads: int | None, api_key: str | None) -> Iterator[str]:
    """`vocoder serve` on a free loopback port for the duration of the block."""
    port = free_port()
    command = [sys.executable, "-m", "vocoder.cli", "serve", "--port", str(port), "--models", str(models)]
    command += ["--max-batch", str(max_batch), "--max-queue", "256", "--log-level", "warning"]
    if threads:
        command += ["--torch-threads", str(threads)]
    env = {**os.environ, **({"VOCODER_API_KEY": api_key} if api_key else {})}
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def feature_file(model: dict[str, Any], seconds: float) -> bytes:
    """A random `.npz` of the shape `model` (an entry of GET /v1/models) expects."""
    frames = max(1, round(seconds * model["sample_rate"] / model["hop_length"]))
    rng = np.random.default_rng(0)
    payload: dict[str, np.ndarray] = {
        "version": np.array(1, dtype=np.int32),
        "sample_rate": np.array(model["sample_rate"], dtype=np.int32),
        "hop_length": np.array(model["hop_length"], dtype=np.int32),
    }
    for item in model["conditioning"]:
        shape = (frames, item["dim"]) if item["name"] in ("mel", "linguistic") else (frames,)
        payload[item["name"]] = rng.standard_normal(shape).astype(np.float32)
    if model["speakers"]:
        payload["speaker"] = np.array(model["speakers"][0])
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    return buffer.getvalue()


def run_level(url: str, model: str, body: bytes, clients: int, requests: int, headers: dict[str, str]) -> dict:
    """`clients` threads each send `requests` requests back to back; returns the level's figures."""

    def client_loop(_: int) -> list[tuple[float, float]]:
        timings = []
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            for _ in range(requests):
                began = time.perf_counter()
                response = http.post(
                    "/v1/synthesize",
                    params={"model": model},
                    files={"features": ("load.npz", body, "application/octet-stream")},
                )
                latency = time.perf_counter() - began
                if response.status_code != 200:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
                timings.append((latency, float(response.headers["x-audio-duration"])))
        return timings

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [item for result in pool.map(client_loop, range(clients)) for item in result]
    wall = time.perf_counter() - began
    latencies = np.array([latency for latency, _ in timings])
    audio = np.array([duration for _, duration in timings])
    return {
        "clients": clients,
        "requests": len(timings),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "rtf_p50": round(float(np.percentile(latencies / audio, 50)), 2),
        "throughput_audio_s_per_s": round(float(audio.sum() / wall), 3),
        "requests_per_s": round(len(timings) / wall, 2),
    }


def benchmark(url: str, args: argparse.Namespace, max_batch: int | str) -> list[dict]:
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    listed = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["models"]
    model = next((item for item in listed if item["name"] == args.model), listed[0]) if args.model else listed[0]
    body = feature_file(model, args.seconds)
    results = []
    for clients in args.clients:
        figures = {"model": model["name"], "max_batch": max_batch, "audio_s": args.seconds}
        figures |= run_level(url, model["name"], body, clients, args.requests, headers)
        results.append(figures)
        print(json.dumps(figures) if args.json else row(figures), flush=True)
    return results


HEADER = "| max batch | clients | requests | p50 latency (s) | p99 latency (s) | RTF p50 | audio s / s | requests / s |"


def row(f: dict) -> str:
    return (
        f"| {f['max_batch']} | {f['clients']} | {f['requests']} | {f['latency_p50_s']} | {f['latency_p99_s']} "
        f"| {f['rtf_p50']} | {f['throughput_audio_s_per_s']} | {f['requests_per_s']} |"
    )


def main() -> None:
    args = parse_args()
    if not args.json:
        print(HEADER + "\n|" + "---|" * 8, flush=True)
    if args.url:
        benchmark(args.url.rstrip("/"), args, "server's")
        return
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models or random_models_dir(args.random, Path(scratch))
        for max_batch in ([1] if args.compare_batching else []) + [args.max_batch]:
            with service(models, max_batch, args.threads, args.api_key) as url:
                benchmark(url, args, max_batch)


if __name__ == "__main__":
    main()
