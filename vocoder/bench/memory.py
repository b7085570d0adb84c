"""Peak memory and the wait for the first streamed chunk, by utterance length (`vocoder bench memory`).

Each (checkout, model, length, mode) is one fresh process running vocoder/bench/memory_probe.py (peak RSS only
grows within a process). `trees` names the checkouts to measure, so one run can put another version (an export of
`main`) beside this one: the probe's source is run with `python -c` from each tree's root, which imports that
tree's `vocoder`. Lengths are the example's features tiled; students are also timed synthesizing the whole
utterance (the teacher's whole synthesis of 100 s takes minutes and holds what streaming holds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from vocoder.bench import memory_probe
from vocoder.bench.timing import device_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "slt_0004_mel.npz"


@dataclass(frozen=True)
class MemoryBenchSettings:
    models: tuple[str, ...] = ("teacher", "student")
    seconds: tuple[float, ...] = (1.0, 10.0, 100.0)
    trees: tuple[Path, ...] = (ROOT,)
    example: Path = EXAMPLE
    chunk_samples: int = 1024
    stream_seconds: float = 1.0
    """Audio streamed after the first chunk before the peak is read: generation past its first block."""
    student_whole: bool = True


def run_probe(tree: Path, request: dict[str, object]) -> dict[str, float]:
    """One measurement in a fresh process importing `tree`'s vocoder."""
    source = Path(memory_probe.__file__).read_text()
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", source, json.dumps(request)],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe in {tree} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(settings: MemoryBenchSettings) -> list[dict[str, object]]:
    """A row per (tree, model, length, mode), lengths innermost, so the trees' rows alternate under the same load."""
    rows: list[dict[str, object]] = []
    for model in settings.models:
        modes = ["stream"] + (["whole"] if settings.student_whole and "student" in model else [])
        for mode in modes:
            for seconds in settings.seconds:
                for tree in settings.trees:
                    request = {
                        "model": model,
                        "seconds": seconds,
                        "mode": mode,
                        "example": str(settings.example),
                        "chunk_samples": settings.chunk_samples,
                        "stream_seconds": settings.stream_seconds,
                    }
                    result = run_probe(tree, request)
                    rows.append({"tree": str(tree), "model": model, "mode": mode, "seconds": seconds, **result})
    return rows


def machine() -> dict[str, object]:
    return {"cpu": device_name(torch.device("cpu")), "cores": os.cpu_count(), "threads": torch.get_num_threads()}


def memory_table(rows: list[dict[str, object]]) -> str:
    """A markdown table: one line per row, seconds to the first chunk or to the whole waveform, peak RSS."""
    lines = [
        "| tree | model | mode | utterance | first chunk / whole | peak RSS | RSS before it |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        took = row.get("first_chunk_s", row.get("whole_s"))
        lines.append(
            f"| {Path(str(row['tree'])).name} | {row['model']} | {row['mode']} | {row['seconds']:g} s "
            f"| {took:.2f} s | {row['peak_rss_gb']:.2f} GB | {row['baseline_rss_gb']:.2f} GB |"
        )
    return "\n".join(lines)
