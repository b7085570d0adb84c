"""The embedded demo corpus: Festival reads the project's own sentence list with up to three voices.

It needs no download: every machine with Festival installed builds the same corpus. Layout (the `demo` layout
of `vocoder preprocess` reads it):
  DIR/metadata.jsonl   one row per utterance: {"id": "slt_0001", "speaker": "slt", "text": "..."}
  DIR/wav/<id>.wav     16-bit PCM at the project's sample rate, exactly as long as the labels
  DIR/lab/<id>.lab     HTS full-context labels with Festival's durations (100 ns units)
  DIR/corpus.json      voices, sentence count, sample rate and Festival's version
Work is split into batches of sentences, one Festival process each, run in parallel; a second run only
synthesises utterances whose files are missing.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vocoder.audio import load_wav, save_wav
from vocoder.config import AudioConfig
from vocoder.errors import VocoderError
from vocoder.features.linguistic import format_labels, label_samples
from vocoder.frontend.festival import festival_binary, get_voice, run_festival

SENTENCES_PATH = Path(__file__).resolve().parent.parent / "data" / "demo_sentences.txt"
DEFAULT_VOICES = ("slt", "kal", "ked")
BATCH_SIZE = 20


def demo_sentences(count: int | None = None) -> list[str]:
    """The first `count` sentences of the list (all of them when None)."""
    sentences = [line.strip() for line in SENTENCES_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    if count is not None:
        if not 1 <= count <= len(sentences):
            raise VocoderError(f"--sentences must be between 1 and {len(sentences)}, got {count}")
        sentences = sentences[:count]
    return sentences


def _utterance_id(voice: str, number: int) -> str:
    return f"{voice}_{number:04d}"


def _synthesise_batch(voice: str, batch: list[tuple[str, str]], out: Path, sample_rate: int) -> list[str]:
    """Festival on one batch of (id, sentence); writes wav and lab per id, returns the ids written."""
    with tempfile.TemporaryDirectory(prefix="demo-corpus-") as scratch:
        utterances = run_festival([text for _, text in batch], voice, Path(scratch), wave=True)
        for (utterance_id, _), utterance in zip(batch, utterances, strict=True):
            if utterance.wave_path is None:
                raise VocoderError(f"Festival wrote no waveform for {utterance_id}")
            wav = load_wav(utterance.wave_path, sample_rate)
            n_samples = label_samples(utterance.segments, sample_rate)
            wav = np.pad(wav[:n_samples], (0, max(0, n_samples - len(wav))))
            (out / "lab" / f"{utterance_id}.lab").write_text(format_labels(utterance.segments))
            save_wav(out / "wav" / f"{utterance_id}.wav", wav, sample_rate)
    return [utterance_id for utterance_id, _ in batch]


def _festival_version() -> str:
    result = subprocess.run([festival_binary(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().split(": ", 1)[-1]


def build_demo_corpus(
    out: Path,
    sentences: int | None = None,
    voices: tuple[str, ...] = DEFAULT_VOICES,
    jobs: int = 2,
    sample_rate: int = AudioConfig().sample_rate,
    progress: bool = True,
) -> int:
    """Build (or complete) the demo corpus in `out`; returns the number of utterances it holds."""
    if not voices:
        raise VocoderError("no voices given")
    for voice in voices:
        get_voice(voice)
    texts = demo_sentences(sentences)
    info_path = out / "corpus.json"
    if info_path.is_file() and json.loads(info_path.read_text()).get("sample_rate") != sample_rate:
        raise VocoderError(f"{out}: holds a demo corpus at another sample rate; use another --out")
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "lab").mkdir(exist_ok=True)
    rows = [
        {"id": _utterance_id(voice, number), "speaker": voice, "text": text}
        for voice in voices
        for number, text in enumerate(texts, start=1)
    ]
    missing = [
        row
        for row in rows
        if not ((out / "wav" / f"{row['id']}.wav").is_file() and (out / "lab" / f"{row['id']}.lab").is_file())
    ]
    batches = []
    for voice in voices:
        pending = [(row["id"], row["text"]) for row in missing if row["speaker"] == voice]
        batches += [(voice, pending[i : i + BATCH_SIZE]) for i in range(0, len(pending), BATCH_SIZE)]
    with (
        tqdm(total=len(missing), desc="demo corpus", unit="utt", disable=not progress) as bar,
        ProcessPoolExecutor(max_workers=max(1, min(jobs, len(batches) or 1))) as pool,
    ):
        futures = [pool.submit(_synthesise_batch, voice, batch, out, sample_rate) for voice, batch in batches]
        for future in as_completed(futures):
            bar.update(len(future.result()))
    (out / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    info = {
        "voices": list(voices),
        "sentences": len(texts),
        "sample_rate": sample_rate,
        "festival": _festival_version(),
        "sentence_source": "vocoder/data/demo_sentences.txt (written for this project)",
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return len(rows)
