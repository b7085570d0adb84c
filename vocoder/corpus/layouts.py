"""Find the utterances of a corpus on disk: LJSpeech, a Festvox voice build (CMU ARCTIC, Festival's voices), VCTK,
a plain folder, or the demo corpus.

Every layout yields the same `CorpusItem`s (id, speaker, audio path, optional labels and text); docs/DATA.md
describes what each layout expects on disk.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vocoder.errors import VocoderError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_ARCTIC_SPEAKER = re.compile(r"^cmu_us_(\w+?)_arctic$")
_ARCTIC_PROMPT = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


class CorpusError(VocoderError):
    """A corpus directory that does not have the structure its layout promises."""


@dataclass(frozen=True)
class CorpusItem:
    """One utterance to preprocess."""

    id: str
    speaker: str
    audio: Path
    labels: Path | None = None
    text: str | None = None


def safe_id(text: str) -> str:
    return _SAFE_ID.sub("_", text).strip("_") or "utt"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise CorpusError(f"{path}: missing; expected {what}")
    return path


def _ljspeech(root: Path) -> list[CorpusItem]:
    metadata = _require(root / "metadata.csv", "LJSpeech's metadata.csv (id|text|normalized text)")
    items = []
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise CorpusError(f"{metadata}:{number}: expected 'id|text|normalized text'")
        text = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
        items.append(CorpusItem(safe_id(fields[0]), "ljspeech", root / "wavs" / f"{fields[0]}.wav", text=text))
    return items


def _festvox_prompts(voice_dir: Path) -> dict[str, str]:
    prompts = voice_dir / "etc" / "txt.done.data"
    if not prompts.is_file():
        return {}
    found = {}
    for line in prompts.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _ARCTIC_PROMPT.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _festvox(root: Path) -> list[CorpusItem]:
    """Festvox voice builds (wav/, etc/txt.done.data, labels/full/): CMU ARCTIC, festvox-ru's msu_ru_nsh_clunits."""
    voice_dirs = [root] if (root / "wav").is_dir() else sorted(d for d in root.iterdir() if (d / "wav").is_dir())
    if not voice_dirs:
        raise CorpusError(f"{root}: no Festvox voice (a directory with wav/) here or one level below")
    items = []
    for voice_dir in voice_dirs:
        match = _ARCTIC_SPEAKER.match(voice_dir.name)
        speaker = match.group(1) if match else voice_dir.name
        prompts = _festvox_prompts(voice_dir)
        for audio in sorted((voice_dir / "wav").glob("*.wav")):
            labels = voice_dir / "labels" / "full" / f"{audio.stem}.lab"
            items.append(
                CorpusItem(
                    safe_id(f"{speaker}_{audio.stem}"),
                    speaker,
                    audio,
                    labels if labels.is_file() else None,
                    prompts.get(audio.stem),
                )
            )
    return items


def _vctk(root: Path) -> list[CorpusItem]:
    text_root = _require(root / "txt", "VCTK's txt/<speaker>/<id>.txt")
    audio_roots = [root / "wav48_silence_trimmed", root / "wav48"]
    items = []
    for speaker_dir in sorted(d for d in text_root.iterdir() if d.is_dir()):
        for text_file in sorted(speaker_dir.glob("*.txt")):
            candidates = [
                audio_root / speaker_dir.name / f"{text_file.stem}{tail}"
                for audio_root in audio_roots
                for tail in ("_mic1.flac", ".flac", ".wav")
            ]
            audio = next((path for path in candidates if path.is_file()), candidates[0])
            text = text_file.read_text(encoding="utf-8", errors="replace").strip()
            items.append(CorpusItem(safe_id(text_file.stem), speaker_dir.name, audio, text=text))
    return items


def _folder(root: Path) -> list[CorpusItem]:
    items = []
    # every path with an audio suffix, files or not: a folder or a broken link is skipped with its reason
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        relative = audio.relative_to(root).with_suffix("")
        speaker = relative.parent.parts[0] if relative.parent.parts else root.resolve().name
        labels, text_file = audio.with_suffix(".lab"), audio.with_suffix(".txt")
        text = text_file.read_text(encoding="utf-8", errors="replace").strip() if text_file.is_file() else None
        items.append(
            CorpusItem(
                safe_id("_".join(relative.parts)), safe_id(speaker), audio, labels if labels.is_file() else None, text
            )
        )
    return items


def _demo(root: Path) -> list[CorpusItem]:
    metadata = _require(root / "metadata.jsonl", "the demo corpus index (build it with `vocoder corpus demo`)")
    items = []
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            utterance, speaker, text = row["id"], row["speaker"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise CorpusError(f"{metadata}:{number}: not a demo corpus row ({error})") from None
        items.append(
            CorpusItem(utterance, speaker, root / "wav" / f"{utterance}.wav", root / "lab" / f"{utterance}.lab", text)
        )
    return items


LAYOUTS: dict[str, Callable[[Path], list[CorpusItem]]] = {
    "ljspeech": _ljspeech,
    "arctic": _festvox,
    "festvox": _festvox,
    "vctk": _vctk,
    "folder": _folder,
    "demo": _demo,
}


def discover(layout: str, root: Path) -> list[CorpusItem]:
    """Every utterance of the corpus at `root`, sorted by id; ids are unique and safe as file names."""
    if layout not in LAYOUTS:
        raise CorpusError(f"unknown layout '{layout}': choose one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise CorpusError(f"{root}: not a directory")
    items = sorted(LAYOUTS[layout](root), key=lambda item: item.id)
    if not items:
        raise CorpusError(f"{root}: no utterances found for layout '{layout}'")
    ids = [item.id for item in items]
    duplicates = sorted({i for i, j in itertools.pairwise(ids) if i == j})
    if duplicates:
        raise CorpusError(f"{root}: utterance ids occur twice: {duplicates[:5]}")
    return items
