"""Matching system outputs to reference recordings by file name, for both the objective evaluation and the MOS
export: the utterance id is the path relative to its directory, without the audio extension."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vocoder.errors import VocoderError

AUDIO_SUFFIXES = (".wav", ".flac")
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED_NAMES = ("reference", "anchor")
SHOWN_NAMES = 10


class PairingError(VocoderError):
    """System directories whose files cannot be matched to the reference set."""


@dataclass(frozen=True)
class Pairing:
    """Reference files by utterance id, each system's files by utterance id, and what each system lacks."""

    reference: dict[str, Path]
    systems: dict[str, dict[str, Path]]
    missing: dict[str, list[str]]


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" ... and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def parse_system(spec: str) -> tuple[str, Path]:
    """`NAME=DIR` from the command line; the name labels the system in every report."""
    name, separator, directory = spec.partition("=")
    if not separator or not name or not directory:
        raise VocoderError(f"--system {spec!r}: expected NAME=DIR, e.g. --system wavenet=out/wavenet")
    if not SYSTEM_NAME.match(name) or name in RESERVED_NAMES:
        raise VocoderError(
            f"--system {spec!r}: the name must be letters, digits, '_', '.' or '-' and not one of {RESERVED_NAMES}"
        )
    return name, Path(directory)


def list_audio(directory: Path, role: str) -> dict[str, Path]:
    """Every audio file under `directory` by utterance id; two files with the same id are an error."""
    if not directory.is_dir():
        raise PairingError(f"{role} directory {directory} does not exist or is not a directory")
    files: dict[str, Path] = {}
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        utterance = path.relative_to(directory).with_suffix("").as_posix()
        if utterance in files:
            raise PairingError(f"{role} directory {directory}: {files[utterance]} and {path} are the same utterance")
        files[utterance] = path
    if not files:
        raise PairingError(f"{role} directory {directory} holds no {'/'.join(AUDIO_SUFFIXES)} files")
    return files


def pair_files(reference_dir: Path, systems: list[tuple[str, Path]]) -> Pairing:
    """Match by utterance id. Files without a reference are an error (a naming mistake would otherwise be scored
    as missing); utterances a system lacks are recorded in `missing` for the report."""
    if not systems:
        raise PairingError("give at least one --system NAME=DIR")
    names = [name for name, _ in systems]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PairingError(f"system names must be unique; repeated: {', '.join(duplicates)}")
    reference = list_audio(reference_dir, "reference")
    found: dict[str, dict[str, Path]] = {}
    missing: dict[str, list[str]] = {}
    problems = []
    for name, directory in systems:
        files = list_audio(directory, f"system {name!r}")
        unpaired = sorted(set(files) - set(reference))
        if unpaired:
            problems.append(
                f"system {name!r} ({directory}): {len(unpaired)} file(s) with no reference in {reference_dir}: "
                f"{_listed(unpaired)}"
            )
        found[name] = {utterance: path for utterance, path in files.items() if utterance in reference}
        missing[name] = sorted(set(reference) - set(files))
    if problems:
        raise PairingError("unpaired files:\n  " + "\n  ".join(problems))
    return Pairing(reference=reference, systems=found, missing=missing)
