"""Load test of the synthesis service on loopback: latency percentiles, real-time factor and throughput.

Starts `vocoder serve` itself (on 127.0.0.1, a free port) with `--models DIR`, or with a randomly initialised
teacher of a config's shape (`--random seed_size`), or targets a running service (`--url`). At each client
count, every client sends `--requests` requests one after another, each a random feature file of `--seconds`
seconds of audio; `--compare-batching` runs every level twice, with batching off (max batch 1) and on.

    .venv/bin/python benchmarks/load.py --random seed_size --clients 1 4 16 --compare-batching

Figures: latency p50/p99 (request sent to whole response received), real-time factor (p50 of latency / audio
duration: below 1 is faster than real time) and throughput (seconds of audio served per wall-clock second).

`--mixed` (with `--models`, a folder holding `student`, `teacher` and `tts-teacher`) times fast requests (a
student's, and a teacher's short `fast` one) first alone, then while slow and hostile clients run beside them:
naive requests (the service started with `VOCODER_NAIVE_MAX_FRAMES`), text near the 500-character limit to
/v1/tts, JSON bodies near the frame cap (parsed, then refused), connections that trickle their headers
(slowloris) and uploads abandoned part-way. It reports each fast kind's p50/p99 alone and under load, what the
hostile requests got, and the service's resident memory (idle, and its peak):

    .venv/bin/python benchmarks/load.py --models models --mixed
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from vocoder.bench import VOICED_HZ
from vocoder.vocabulary import MATRIX_ARRAYS

HOSTILE_KINDS = ("naive", "tts", "json", "slowloris", "aborted_upload")


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
    mixed = parser.add_argument_group("mixed load (--mixed)")
    mixed.add_argument("--mixed", action="store_true", help="time fast requests alone, then beside hostile ones")
    mixed.add_argument("--fast-requests", type=int, default=40, help="timed student requests per phase")
    mixed.add_argument("--teacher-requests", type=int, default=10, help="timed teacher requests per phase")
    mixed.add_argument("--student-seconds", type=float, default=1.0, help="audio seconds per student request")
    mixed.add_argument("--teacher-seconds", type=float, default=0.1, help="audio seconds per teacher request")
    mixed.add_argument("--naive-frames", type=int, default=4, help="VOCODER_NAIVE_MAX_FRAMES of the service")
    mixed.add_argument("--slowloris", type=int, default=16, help="connections trickling their headers")
    mixed.add_argument("--loaded-seconds", type=float, default=240, help="longest the loaded phase may run")
    mixed.add_argument(
        "--hostile",
        nargs="+",
        default=list(HOSTILE_KINDS),
        choices=HOSTILE_KINDS,
        help="the slow and hostile kinds to run (default: all)",
    )
    mixed.add_argument("--workers", type=int, help="inference threads per lane of the started service")
    mixed.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="more service environment")
    args = parser.parse_args()
    if args.url and args.compare_batching:
        parser.error("--compare-batching starts the service itself: use --models or --random")
    if args.mixed and not args.models:
        parser.error("--mixed starts the service itself (its memory is measured): use --models")
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
def service(
    models: Path,
    max_batch: int,
    threads: int | None,
    api_key: str | None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    started: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """`vocoder serve` on a free loopback port for the duration of the block (its process appended to
    `started`, when given). `extra` flags replace the load test's deep queue (`--max-queue 256`)."""
    port = free_port()
    command = [sys.executable, "-m", "vocoder.cli", "serve", "--port", str(port), "--models", str(models)]
    command += ["--max-batch", str(max_batch), "--log-level", "warning"]
    command += extra if extra is not None else ["--max-queue", "256"]
    if threads:
        command += ["--torch-threads", str(threads)]
    environment = {**os.environ, **(env or {}), **({"VOCODER_API_KEY": api_key} if api_key else {})}
    process = subprocess.Popen(command, env=environment)
    if started is not None:
        started.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def feature_file(model: dict[str, Any], seconds: float) -> bytes:
    """A random `.npz` of every array `model` (an entry of GET /v1/models) reads (`feature_arrays`), its F0 (`lf0`,
    `vuv`: a teacher's conditioning or a student's harmonic source) voiced throughout at VOICED_HZ."""
    frames = max(1, round(seconds * model["sample_rate"] / model["hop_length"]))
    rng = np.random.default_rng(0)
    payload: dict[str, np.ndarray] = {
        "version": np.array(1, dtype=np.int32),
        "sample_rate": np.array(model["sample_rate"], dtype=np.int32),
        "hop_length": np.array(model["hop_length"], dtype=np.int32),
    }
    voiced = {"lf0": np.full(frames, np.log(VOICED_HZ), np.float32), "vuv": np.ones(frames, np.float32)}
    for item in model["feature_arrays"]:
        shape = (frames, item["dim"]) if item["name"] in MATRIX_ARRAYS else (frames,)
        name = item["name"]
        payload[name] = voiced[name] if name in voiced else rng.standard_normal(shape).astype(np.float32)
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


# Mixed load: fast requests timed alone, then beside slow and hostile ones

TTS_TEXT = ("The quick brown fox jumps over the lazy dog by the river while seven tired sailors sing softly. " * 6)[
    :490
]
"""Near /v1/tts's 500-character limit: 0.04 s a letter puts it near 20 s of speech (3,900 of 8,000 frames)."""


def proc_kib(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB: VmRSS (resident now) or VmHWM (the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"/proc/{pid}/status has no {field}")


def json_features(model: dict[str, Any], frames: int, rate: int) -> bytes:
    """A JSON feature body of `frames` mel frames for `model`, short numbers (many per byte: the parse's worst),
    claiming sample rate `rate` (another than the model's: parsed whole, then refused with a 422)."""
    dim = next(item["dim"] for item in model["conditioning"] if item["name"] == "mel")
    row = "[" + ",".join(["-1.5"] * dim) + "]"
    head = f'{{"sample_rate":{rate},"hop_length":{model["hop_length"]},'
    return (head + '"mel":[' + ",".join([row] * frames) + "]}").encode()


def timed(
    url: str, params: dict[str, str], body: bytes, count: int, headers: dict, until: float
) -> tuple[list[float], Counter[int]]:
    """Latencies (s) of up to `count` requests sent one after another (none started after `until`), and the
    statuses they got (a failure's latency counts: a 504 after the timeout is what its client waited)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        for _ in range(count):
            if time.monotonic() > until:
                break
            began = time.perf_counter()
            response = http.post("/v1/synthesize", params=params, files={"features": ("f.npz", body, "x/y")})
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] += 1
    return latencies, statuses


class Hostile:
    """Slow and hostile clients, each a thread looping until `stop`; `tally` counts what each kind got."""

    def __init__(self, url: str, models: dict[str, dict], args: argparse.Namespace, headers: dict[str, str]) -> None:
        self.url, self.models, self.args, self.headers = url, models, args, headers
        self.stop = threading.Event()
        self.tally: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))

    def count(self, what: str) -> None:
        with self.lock:
            self.tally[what] += 1

    def start(self) -> None:
        teacher, student = self.models["teacher"], self.models["student"]
        naive = feature_file(teacher, self.args.naive_frames * teacher["hop_length"] / teacher["sample_rate"])
        cap = student["max_frames"]
        big_json = json_features(student, cap - 8, rate=student["sample_rate"] // 2)  # parsed whole, then refused
        loops: list[tuple[str, Callable[[], None]]] = [
            ("naive", lambda: self._post("naive", "/v1/synthesize", {"model": "teacher", "method": "naive"}, naive)),
            ("naive", lambda: self._post("naive", "/v1/synthesize", {"model": "teacher", "method": "naive"}, naive)),
            ("tts", lambda: self._post("tts", "/v1/tts", {"model": "tts-teacher"}, None, {"text": TTS_TEXT})),
            ("json", lambda: self._post("json", "/v1/synthesize", {"model": "student"}, None, raw=big_json)),
            ("json", lambda: self._post("json", "/v1/synthesize", {"model": "student"}, None, raw=big_json)),
            ("aborted_upload", self._aborted_upload),
            *[("slowloris", self._slowloris) for _ in range(self.args.slowloris)],
        ]
        for name, step in loops:
            if name not in self.args.hostile:
                continue
            thread = threading.Thread(target=self._loop, args=(name, step), name=f"hostile-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _loop(self, name: str, step: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                step()
            except (httpx.HTTPError, OSError) as error:
                self.count(f"{name} {type(error).__name__}")
                self.stop.wait(0.2)

    def _post(
        self, name: str, path: str, params: dict, npz: bytes | None, body: dict | None = None, raw: bytes | None = None
    ) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=600) as http:
            if npz is not None:
                response = http.post(path, params=params, files={"features": ("h.npz", npz, "x/y")})
            elif raw is not None:
                response = http.post(path, params=params, content=raw, headers={"content-type": "application/json"})
            else:
                response = http.post(path, params=params, json=body)
        self.count(f"{name} {response.status_code}")
        if response.status_code == 503:
            self.stop.wait(float(response.headers.get("retry-after", "1")))

    def _slowloris(self) -> None:
        """Headers a byte a second, until the service closes the connection (its header deadline)."""
        with socket.create_connection(self.address, timeout=30) as sock:
            sock.sendall(b"POST /v1/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            while not self.stop.wait(1.0):
                try:
                    sock.sendall(b"a")
                except OSError:
                    break
        self.count("slowloris closed by the service")

    def _aborted_upload(self) -> None:
        """An 8 MiB multipart upload that stops after 2 MiB and hangs up."""
        with socket.create_connection(self.address, timeout=30) as sock:
            sock.sendall(
                b"POST /v1/synthesize?model=student HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 8388608\r\n\r\n"
                b'--xyz\r\nContent-Disposition: form-data; name="features"; filename="a.npz"\r\n\r\n'
            )
            sock.sendall(bytes(2 * 1024 * 1024))
        self.count("aborted_upload sent")
        self.stop.wait(0.2)


def percentiles(measured: tuple[list[float], Counter[int]]) -> dict[str, Any]:
    latencies, statuses = measured
    values = np.array(latencies)
    print(f"  {len(values)} requests, statuses {dict(statuses)}", file=sys.stderr, flush=True)
    return {
        "n": len(values),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "p50_ms": round(1000 * float(np.percentile(values, 50)), 1),
        "p99_ms": round(1000 * float(np.percentile(values, 99)), 1),
    }


def mixed_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The fast requests' latencies alone, then beside the hostile clients; the service's memory."""
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    env = {"VOCODER_NAIVE_MAX_FRAMES": str(args.naive_frames)}
    env |= dict(item.split("=", 1) for item in args.env)
    extra = ["--workers", str(args.workers)] if args.workers else []
    started: list[subprocess.Popen[bytes]] = []
    with service(args.models, args.max_batch, args.threads, args.api_key, extra, env, started) as url:
        pid = started[0].pid
        listed = {
            item["name"]: item for item in httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["models"]
        }
        missing = {"student", "teacher", "tts-teacher"} - set(listed)
        if missing:
            raise SystemExit(f"--mixed needs the models {sorted(missing)} in {args.models}")
        student = feature_file(listed["student"], args.student_seconds)
        teacher = feature_file(listed["teacher"], args.teacher_seconds)
        kinds = {
            "student": ({"model": "student"}, student, args.fast_requests),
            "teacher fast": ({"model": "teacher", "method": "fast"}, teacher, args.teacher_requests),
        }
        kinds = {kind: spec for kind, spec in kinds.items() if spec[2] > 0}
        idle_kib = proc_kib(pid, "VmRSS")
        results: dict[str, Any] = {"unloaded": {}, "loaded": {}}
        for kind, (params, body, count) in kinds.items():
            timed(url, params, body, 2, headers, float("inf"))  # warm the connection path
            print(f"{kind} alone:", file=sys.stderr, flush=True)
            results["unloaded"][kind] = percentiles(timed(url, params, body, count, headers, float("inf")))
        hostile = Hostile(url, listed, args, headers)
        hostile.start()
        time.sleep(3.0)  # every hostile kind under way
        until = time.monotonic() + args.loaded_seconds
        with ThreadPoolExecutor(len(kinds)) as pool:
            futures = {
                kind: pool.submit(timed, url, params, body, count, headers, until)
                for kind, (params, body, count) in kinds.items()
            }
            loaded = {kind: future.result() for kind, future in futures.items()}
        hostile.finish()
        print("under load:", file=sys.stderr, flush=True)
        results["loaded"] = {kind: percentiles(measured) for kind, measured in loaded.items()}
        results["hostile"] = dict(sorted(hostile.tally.items()))
        results["rss_idle_mib"] = round(idle_kib / 1024, 1)
        results["rss_peak_mib"] = round(proc_kib(pid, "VmHWM") / 1024, 1)
    for kind in kinds:
        unloaded, under = results["unloaded"][kind], results["loaded"][kind]
        under["p99_vs_unloaded"] = round(under["p99_ms"] / unloaded["p99_ms"], 2)
    return results


def print_mixed(results: dict[str, Any]) -> None:
    print("| request | alone: n | p50 (ms) | p99 (ms) | under load: n | p50 (ms) | p99 (ms) | p99 / alone | statuses |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, alone in results["unloaded"].items():
        under = results["loaded"][kind]
        print(
            f"| {kind} | {alone['n']} | {alone['p50_ms']} | {alone['p99_ms']} | {under['n']} | {under['p50_ms']} "
            f"| {under['p99_ms']} | {under['p99_vs_unloaded']}x | {under['statuses']} |"
        )
    print(f"\nhostile requests: {results['hostile']}")
    print(f"service RSS: idle {results['rss_idle_mib']} MiB, peak {results['rss_peak_mib']} MiB")


def main() -> None:
    args = parse_args()
    if args.mixed:
        results = mixed_benchmark(args)
        print(json.dumps(results)) if args.json else print_mixed(results)
        return
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
