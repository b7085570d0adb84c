"""Linguistic conditioning: HTS full-context labels answered by a question set, one vector per frame.

A label file holds one phone per line, `start end context`, times in 100 ns units (HTS, Festival, Merlin, CMU
ARCTIC). Each phone's context is answered once by the question set (`vocoder/data/questions_hts.hed`): a binary
`QS` is 1 when any of its glob patterns matches the whole context; a numeric `CQS` captures an integer with a
regular expression and is scaled as `min(log1p(n) / log1p(100), 1)` (0 when not applicable, e.g. in pauses).
Every frame then gets its phone's answers plus three positional values: forward and backward position of the
frame centre within the phone (0..1) and the phone's duration, scaled as `min(log1p(ms) / log1p(1000), 1)`.
The frame grid is the acoustic one: frame i covers samples [i * hop, (i + 1) * hop), a file lasting n samples has
ceil(n / hop) frames, and a frame belongs to the phone that holds its centre.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocoder.errors import VocoderError

QUESTIONS_PATH = Path(__file__).resolve().parent.parent / "data" / "questions_hts.hed"
UNITS_PER_SECOND = 10_000_000
POSITION_FEATURES = ("phone_position_forward", "phone_position_backward", "phone_duration")
COUNT_CAP = 100  # counts at or above this scale to 1
DURATION_CAP_MS = 1000.0

# The HTS full-context layout: quinphone, then the /A: .. /J: blocks, in order.
_CONTEXT = re.compile(
    r"^[^\^\s]+\^[^-\s]+-[^+\s]+\+[^=\s]+=[^@\s]+@\S*"
    r"/A:\S*/B:\S*/C:\S*/D:\S*/E:\S*/F:\S*/G:\S*/H:\S*/I:\S*/J:\S*$"
)
_CENTRE_PHONE = re.compile(r"^[^\^]+\^[^-]+-([^+]+)\+")
_QUESTION = re.compile(r'^(QS|CQS)\s+"([^"]+)"\s+\{(.*)\}\s*$')


class LabelFileError(VocoderError):
    """A label file that cannot be turned into features; the message names the file and the line."""


class QuestionSetError(VocoderError):
    """A question file that cannot be compiled; the message names the file and the line."""


@dataclass(frozen=True)
class Segment:
    """One labelled phone: start and end in 100 ns units, its full context, and where it came from."""

    start: int
    end: int
    context: str
    line: int

    @property
    def phone(self) -> str:
        match = _CENTRE_PHONE.match(self.context)
        return match.group(1) if match else self.context


@dataclass(frozen=True)
class QuestionSet:
    """Compiled questions: one regex per binary question, one capturing regex per numeric question."""

    binary_names: tuple[str, ...]
    binary: tuple[re.Pattern[str], ...]
    numeric_names: tuple[str, ...]
    numeric: tuple[re.Pattern[str], ...]

    @property
    def dim(self) -> int:
        """Width of a frame vector: question answers plus the positional features."""
        return len(self.binary) + len(self.numeric) + len(POSITION_FEATURES)

    @property
    def names(self) -> tuple[str, ...]:
        return self.binary_names + self.numeric_names + POSITION_FEATURES

    def index(self, name: str) -> int:
        """Column of a question (or positional feature) in the frame vectors."""
        return self.names.index(name)

    def answer(self, context: str) -> np.ndarray:
        """The question answers for one full-context label, `[len(QS) + len(CQS)]` float32."""
        values = np.zeros(len(self.binary) + len(self.numeric), dtype=np.float32)
        for i, pattern in enumerate(self.binary):
            if pattern.match(context):
                values[i] = 1.0
        offset = len(self.binary)
        for i, pattern in enumerate(self.numeric):
            found = pattern.search(context)
            if found:
                values[offset + i] = min(math.log1p(int(found.group(1))) / math.log1p(COUNT_CAP), 1.0)
        return values


def _compile_binary(patterns: str, where: str) -> re.Pattern[str]:
    globs = [glob.strip() for glob in patterns.split(",") if glob.strip()]
    if not globs:
        raise QuestionSetError(f"{where}: a QS needs at least one pattern")
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs))


def _compile_numeric(expression: str, where: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(expression)
    except re.error as error:
        raise QuestionSetError(f"{where}: bad regular expression: {error}") from None
    if pattern.groups != 1:
        raise QuestionSetError(f"{where}: a CQS needs exactly one capture group, found {pattern.groups}")
    return pattern


def parse_question_set(text: str, source: str) -> QuestionSet:
    """Compile an HTS question file: `QS "name" {glob,glob}` and `CQS "name" {regex}`; '#' starts a comment."""
    kinds: dict[str, list[tuple[str, re.Pattern[str]]]] = {"QS": [], "CQS": []}
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        match = _QUESTION.match(line)
        if not match:
            raise QuestionSetError(f'{where}: expected QS "name" {{patterns}} or CQS "name" {{regex}}')
        kind, name, body = match.groups()
        if name in seen:
            raise QuestionSetError(f"{where}: question '{name}' is defined twice")
        seen.add(name)
        compiled = _compile_binary(body, where) if kind == "QS" else _compile_numeric(body, where)
        kinds[kind].append((name, compiled))
    if not kinds["QS"] and not kinds["CQS"]:
        raise QuestionSetError(f"{source}: no questions")
    return QuestionSet(
        binary_names=tuple(name for name, _ in kinds["QS"]),
        binary=tuple(pattern for _, pattern in kinds["QS"]),
        numeric_names=tuple(name for name, _ in kinds["CQS"]),
        numeric=tuple(pattern for _, pattern in kinds["CQS"]),
    )


@lru_cache(maxsize=4)
def load_question_set(path: str | Path = QUESTIONS_PATH) -> QuestionSet:
    """The question set in `path` (default: the project's own), compiled once per process."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise QuestionSetError(f"{path}: cannot read the question set: {error}") from None
    return parse_question_set(text, str(path))


def linguistic_dim(path: str | Path = QUESTIONS_PATH) -> int:
    """The `features.linguistic_dim` a config needs for features made with this question set."""
    return load_question_set(path).dim


def question_set_digest(path: str | Path = QUESTIONS_PATH) -> str:
    """A content hash of the question file: caches of linguistic features are only valid for one set."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def parse_labels(text: str, source: str) -> list[Segment]:
    """Parse `start end context` lines; times must be integers, start at 0, and tile the file without gaps."""
    segments: list[Segment] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        parts = raw.split()
        if len(parts) != 3:
            raise LabelFileError(f"{where}: expected 'start end context' (times in 100 ns units), got {raw!r}")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise LabelFileError(
                f"{where}: times must be integers in 100 ns units, got {parts[0]!r} {parts[1]!r}"
            ) from None
        if start < 0 or end < start:
            raise LabelFileError(f"{where}: bad times: start {start}, end {end}")
        expected = segments[-1].end if segments else 0
        if start != expected:
            what = "overlaps the previous segment" if start < expected else "leaves a gap after the previous one"
            kind = "first segment must start at 0" if not segments else f"segment {what}"
            raise LabelFileError(f"{where}: {kind} (starts at {start}, expected {expected})")
        if not _CONTEXT.match(parts[2]):
            raise LabelFileError(f"{where}: not an HTS full-context label: {parts[2][:80]!r}")
        segments.append(Segment(start, end, parts[2], number))
    if not segments:
        raise LabelFileError(f"{source}: no labels")
    if segments[-1].end == 0:
        raise LabelFileError(f"{source}: the labels last zero time")
    return segments


def read_labels(path: str | Path) -> list[Segment]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelFileError(f"{path}: cannot read labels: {error}") from None
    return parse_labels(text, str(path))


def format_labels(segments: Sequence[Segment]) -> str:
    """Label-file text for `segments` (the inverse of `parse_labels`)."""
    return "".join(f"{s.start} {s.end} {s.context}\n" for s in segments)


def label_samples(segments: Sequence[Segment], sample_rate: int) -> int:
    """The labels' duration in samples."""
    return round(segments[-1].end * sample_rate / UNITS_PER_SECOND)


def frame_phones(segments: Sequence[Segment], sample_rate: int, hop_length: int) -> np.ndarray:
    """`[frames]` index of the segment holding each frame centre; the final part-frame takes the last segment."""
    n_frames = -(-label_samples(segments, sample_rate) // hop_length)
    ends = np.array([s.end for s in segments], dtype=np.float64) * sample_rate / UNITS_PER_SECOND
    centres = (np.arange(n_frames) + 0.5) * hop_length
    return np.minimum(np.searchsorted(ends, centres, side="right"), len(segments) - 1)


def linguistic_features(
    segments: Sequence[Segment], sample_rate: int, hop_length: int, questions: QuestionSet | None = None
) -> np.ndarray:
    """`[frames, questions.dim]` float32: each frame's phone answers plus its position within the phone."""
    questions = questions or load_question_set()
    owners = frame_phones(segments, sample_rate, hop_length)
    answers = np.stack([questions.answer(s.context) for s in segments])
    starts = np.array([s.start for s in segments], dtype=np.float64) * sample_rate / UNITS_PER_SECOND
    ends = np.array([s.end for s in segments], dtype=np.float64) * sample_rate / UNITS_PER_SECOND
    lengths = np.maximum(ends - starts, 1e-9)
    centres = (np.arange(len(owners)) + 0.5) * hop_length
    forward = np.clip((centres - starts[owners]) / lengths[owners], 0.0, 1.0)
    duration_ms = (ends - starts)[owners] * 1000.0 / sample_rate
    duration = np.minimum(np.log1p(duration_ms) / math.log1p(DURATION_CAP_MS), 1.0)
    positions = np.stack([forward, 1.0 - forward, duration], axis=1)
    return np.concatenate([answers[owners], positions], axis=1).astype(np.float32)
