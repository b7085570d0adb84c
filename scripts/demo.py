"""The main job (`make demo`): start the service on the bundled models, synthesize the bundled examples through HTTP
with every model that can read them (and one text through the TTS route), write out/*.wav, print a table, stop.

    python scripts/demo.py [--models models] [--out out] [--port 0]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
READY_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 1800


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(client: httpx.Client, service: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.poll() is not None:
            sys.exit(f"the service exited with status {service.returncode} before it was ready")
        try:
            answer = client.get("/readyz")
            if answer.status_code == 200:
                return
            problems = answer.json().get("problems", [])
            if any("loading" not in problem for problem in problems):
                sys.exit(f"the service cannot get ready: {problems}")
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit(f"the service was not ready after {READY_TIMEOUT_S} s")


def jobs_for(model: dict) -> list[tuple[str, str, dict]]:
    """(output name, route, request arguments) for every example this model can read."""
    conditioning = {item["name"] for item in model["conditioning"]}
    kind = "tts" if "linguistic" in conditioning else "mel"
    jobs = []
    for example in sorted(EXAMPLES.glob(f"*_{kind}.npz")):
        files = {"features": (example.name, example.read_bytes(), "application/octet-stream")}
        jobs.append((f"{model['name']}_{example.stem}", "/v1/synthesize", {"files": files}))
    if kind == "tts":
        text = (EXAMPLES / "tts.txt").read_text().strip()
        jobs.append((f"{model['name']}_text", "/v1/tts", {"json": {"text": text, "voice": "slt"}}))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=REPO / "out")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args()
    port = args.port or free_port()
    args.out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "vocoder.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models",
        str(args.models),
    ]
    print(f"starting: {' '.join(command[2:])}", flush=True)
    log = (args.out / "service.log").open("wb")
    service = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_S) as client:
            wait_until_ready(client, service)
            for model in client.get("/v1/models").json()["models"]:
                for name, route, request in jobs_for(model):
                    started = time.perf_counter()
                    answer = client.post(route, params={"model": model["name"], "seed": 0}, **request)
                    wall = time.perf_counter() - started
                    if answer.status_code != 200:
                        sys.exit(f"{route} with {model['name']} failed: {answer.status_code} {answer.text}")
                    target = args.out / f"{name}.wav"
                    target.write_bytes(answer.content)
                    seconds = float(answer.headers["X-Audio-Duration"])
                    rows.append((model["name"], model["kind"], target.name, seconds, wall))
                    print(f"  wrote {target.relative_to(REPO) if target.is_relative_to(REPO) else target}", flush=True)
    finally:
        service.send_signal(signal.SIGINT)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
    print()
    print(f"{'model':<12} {'kind':<8} {'file':<34} {'audio s':>8} {'wall s':>8} {'RTF':>7}")
    for model, kind, name, seconds, wall in rows:
        print(f"{model:<12} {kind:<8} {name:<34} {seconds:>8.2f} {wall:>8.2f} {wall / seconds:>7.2f}")
    print("\nRTF = wall seconds per second of audio, over HTTP on this machine (below 1: faster than real time).")


if __name__ == "__main__":
    main()
