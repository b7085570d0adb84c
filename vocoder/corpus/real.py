"""Real recorded speech that Debian ships, as feature caches for training and held-out evaluation.

Three sources, each a Debian package:
- `festvox-ru`: the recordings of Festival's Russian unit-selection voice (620 read sentences, one male speaker,
  16 kHz, clean); a Festvox voice build, so the `festvox` layout reads it.
- `ktuberling`: isolated words in many languages and voices (`ktuberling-data`, mostly 44.1 kHz stereo: resampled
  and mixed down by preprocessing); the `folder` layout, one speaker per language folder.
- `asterisk-en`: English telephone prompts, one female speaker, G.722-coded (`asterisk-core-sounds-en-g722`),
  decoded to 16-bit WAV here. Never trained on: an unseen source for evaluation.

Each training source keeps its own deterministic held-out split (`split_of`: the same ids are held out on every
machine and run); the unseen source is evaluated whole. Bad files are skipped and listed in each cache's report.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vocoder.audio import save_wav
from vocoder.config import Config
from vocoder.corpus.cache import FeatureCache
from vocoder.corpus.preprocess import preprocess
from vocoder.errors import VocoderError
from vocoder.vocabulary import SPLITS

Role = Literal["train", "unseen"]


class RealCorpusError(VocoderError):
    """A source that cannot be installed or read; says which and what to do."""


def _link(source: Path, corpus_dir: Path) -> Path:
    """The installed directory itself, through a symbolic link in the corpus folder (nothing is copied)."""
    if corpus_dir.is_symlink() or corpus_dir.exists():
        if corpus_dir.resolve() != source.resolve():
            raise RealCorpusError(f"{corpus_dir}: exists and is not a link to {source}; remove it or choose --out")
        return corpus_dir
    corpus_dir.parent.mkdir(parents=True, exist_ok=True)
    corpus_dir.symlink_to(source, target_is_directory=True)
    return corpus_dir


def _decode_g722(source: Path, corpus_dir: Path) -> Path:
    """Every `*.g722` file of `source` as a 16 kHz WAV under `corpus_dir/<speaker>/` (the folder layout)."""
    try:
        import G722  # the PyPI package `g722`
    except ImportError:
        raise RealCorpusError("asterisk-en: decoding G.722 needs the Python package g722 (pip install g722)") from None
    speaker_dir = corpus_dir / source.name.lower()
    for coded in sorted(source.glob("*.g722")):
        target = speaker_dir / f"{coded.stem}.wav"
        if target.is_file():
            continue
        pcm = np.asarray(array.array("h", G722.G722(16000, 64000).decode(coded.read_bytes())), dtype=np.float32)
        if len(pcm):
            save_wav(target, pcm / 32768.0, 16000)
    return corpus_dir


@dataclass(frozen=True)
class RealSource:
    name: str
    package: str
    installed_dir: Path
    layout: str
    role: Role
    prepare: Callable[[Path, Path], Path]  # (installed dir, corpus dir) -> the directory preprocessing reads


SOURCES: dict[str, RealSource] = {
    source.name: source
    for source in (
        RealSource(
            "festvox-ru",
            "festvox-ru",
            Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits"),
            "festvox",
            "train",
            _link,
        ),
        RealSource("ktuberling", "ktuberling-data", Path("/usr/share/ktuberling/sounds"), "folder", "train", _link),
        RealSource(
            "asterisk-en",
            "asterisk-core-sounds-en-g722",
            Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
            "folder",
            "unseen",
            _decode_g722,
        ),
    )
}


def ensure_installed(sources: list[RealSource], install: bool) -> None:
    """Install the Debian packages of sources whose data is missing (apt-get, as root), or say how to."""
    missing = [source for source in sources if not source.installed_dir.is_dir()]
    if not missing:
        return
    packages = [source.package for source in missing]
    command = ["apt-get", "install", "-y", "-qq", *packages]
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RealCorpusError(
            f"missing {', '.join(str(s.installed_dir) for s in missing)}: install with `{' '.join(command)}` (as root)"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], command):
        if subprocess.run(step, env=environment, check=False).returncode != 0:
            raise RealCorpusError(f"`{' '.join(step)}` failed; run it by hand and try again")
    still = [str(s.installed_dir) for s in missing if not s.installed_dir.is_dir()]
    if still:
        raise RealCorpusError(f"installed {packages}, but {still} is still missing")


def build_real_corpus(
    out: Path, config: Config, names: list[str], install: bool = True, jobs: int | None = None
) -> dict[str, Any]:
    """Install, prepare and preprocess each named source into `out/feats/<name>`; returns (and writes to
    `out/sources.json`) per source: role, cache, utterances per split, minutes, and skipped files."""
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise RealCorpusError(f"unknown sources {unknown}: choose from {list(SOURCES)}")
    sources = [SOURCES[name] for name in names]
    ensure_installed(sources, install)
    summary: dict[str, Any] = {}
    for source in sources:
        corpus_dir = source.prepare(source.installed_dir, out / "corpora" / source.name)
        cache = out / "feats" / source.name
        report = preprocess(source.layout, corpus_dir, cache, config, jobs)
        rows = list(FeatureCache(cache).read_manifest().values())
        splits = {split: sum(row.split == split for row in rows) for split in SPLITS}
        summary[source.name] = {
            "role": source.role,
            "package": source.package,
            "cache": str(cache),
            "utterances": splits,
            "minutes": round(sum(row.duration for row in rows) / 60, 1),
            "skipped": len(report["skipped"]),
        }
    (out / "sources.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
