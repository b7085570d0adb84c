"""The feature cache on disk: its layout, the manifest, the speaker table and the feature-config stamp.

FEATURE_DIR/features/<id>.npz, audio/<id>.wav, manifest.jsonl, speakers.json, features.json, report.json
(docs/DATA.md). features.json stamps the cache with a hash of everything that shapes a feature file; a cache
stamped with another hash is cleared before it is filled again, so two feature versions never mix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vocoder.atomic import atomic_path
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.features.linguistic import QUESTIONS_PATH, question_set_digest
from vocoder.vocabulary import Split

VALID_PERCENT, TEST_PERCENT = 5, 5


@dataclass(frozen=True)
class ManifestRow:
    """One cached utterance, a line of manifest.jsonl."""

    id: str
    speaker: str
    split: str
    frames: int
    duration: float  # seconds: frames * hop / sample_rate, the length of audio/<id>.wav
    text: str | None
    source: str  # the corpus audio file it came from


def split_of(utterance_id: str) -> Split:
    """Deterministic train/valid/test split from a hash of the id: stable when the corpus grows."""
    bucket = int(hashlib.sha1(utterance_id.encode()).hexdigest()[:8], 16) % 100
    if bucket < VALID_PERCENT:
        return "valid"
    if bucket < VALID_PERCENT + TEST_PERCENT:
        return "test"
    return "train"


def feature_stamp(config: Config, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """What makes a feature file what it is, and its hash."""
    stamp: dict[str, Any] = {
        "audio": config.audio.cache_stamp(),
        "features": config.features.model_dump(),
        "question_set": question_set_digest(QUESTIONS_PATH) if "linguistic" in config.features.conditioning else None,
        "preprocessing": preprocessing,
    }
    if config.extracted_arrays() != config.features.conditioning:  # absent otherwise: older caches keep their hash
        stamp["arrays"] = config.extracted_arrays()  # more than the conditioning: F0 (a harmonic source, voicing)
    stamp["hash"] = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
    return stamp


def _write_json(path: Path, data: object) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class FeatureCache:
    """Paths and bookkeeping of one feature directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.features_dir = root / "features"
        self.audio_dir = root / "audio"
        self.manifest_path = root / "manifest.jsonl"
        self.stamp_path = root / "features.json"
        self.speakers_path = root / "speakers.json"
        self.report_path = root / "report.json"

    def feature_path(self, utterance_id: str) -> Path:
        return self.features_dir / f"{utterance_id}.npz"

    def audio_path(self, utterance_id: str) -> Path:
        return self.audio_dir / f"{utterance_id}.wav"

    def open(self, stamp: dict[str, Any]) -> bool:
        """Prepare the directory for `stamp`; True if an older, differently stamped cache was cleared."""
        self.root.mkdir(parents=True, exist_ok=True)
        cleared = False
        if self.stamp_path.is_file():
            try:
                previous = json.loads(self.stamp_path.read_text()).get("hash")
            except (json.JSONDecodeError, AttributeError):
                previous = None
            if previous != stamp["hash"]:
                for directory in (self.features_dir, self.audio_dir):
                    shutil.rmtree(directory, ignore_errors=True)
                for path in (self.manifest_path, self.speakers_path, self.report_path):
                    path.unlink(missing_ok=True)
                cleared = True
        elif self.manifest_path.exists() or self.features_dir.exists():
            raise VocoderError(f"{self.root}: holds a feature cache without features.json; use another --out")
        _write_json(self.stamp_path, stamp)
        self.features_dir.mkdir(exist_ok=True)
        self.audio_dir.mkdir(exist_ok=True)
        return cleared

    def read_manifest(self) -> dict[str, ManifestRow]:
        """Rows of finished utterances whose files are still there (a torn last line is ignored)."""
        if not self.manifest_path.is_file():
            return {}
        rows = {}
        for line in self.manifest_path.read_text().splitlines():
            try:
                row = ManifestRow(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue
            if self.feature_path(row.id).is_file() and self.audio_path(row.id).is_file():
                rows[row.id] = row
        return rows

    def append(self, row: ManifestRow) -> None:
        """Record a finished utterance at once, so an interrupted run keeps its progress."""
        with self.manifest_path.open("a") as handle:
            handle.write(json.dumps(asdict(row)) + "\n")

    def finish(self, rows: Iterable[ManifestRow], report: dict[str, Any]) -> None:
        """Rewrite the manifest sorted by id, and write the speaker table and the report."""
        ordered = sorted(rows, key=lambda row: row.id)
        with atomic_path(self.manifest_path) as temporary:
            temporary.write_text("".join(json.dumps(asdict(row)) + "\n" for row in ordered))
        counts = Counter(row.speaker for row in ordered)
        _write_json(self.speakers_path, {"speakers": sorted(counts), "utterances": dict(sorted(counts.items()))})
        _write_json(self.report_path, report)
