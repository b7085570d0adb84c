"""Run the Festival binary on sentences and read back full-context labels, F0 targets and waveforms.

Festival does the text analysis (tokens, POS, phrasing, lexicon, intonation, durations); a Scheme script of ours
(`vocoder/data/festival_dump.scm`) walks the utterance it builds and writes files that this module reads. All
sentences of one call share one Festival process, so its start-up cost is paid once.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.linguistic import UNITS_PER_SECOND, Segment, read_labels

DUMP_SCRIPT = Path(__file__).resolve().parent.parent / "data" / "festival_dump.scm"


@dataclass(frozen=True)
class Voice:
    """A Festival voice: the name the CLI uses, Festival's name for it, and the Debian package that holds it."""

    key: str
    festival_name: str
    package: str
    language: str  # BCP 47

    @property
    def select_function(self) -> str:
        return f"voice_{self.festival_name}"


VOICES = {
    "slt": Voice("slt", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "en-US"),
    "kal": Voice("kal", "kal_diphone", "festvox-kallpc16k", "en-US"),
    "ked": Voice("ked", "ked_diphone", "festvox-kdlpc16k", "en-US"),
}
MIN_SPEED, MAX_SPEED = 0.25, 4.0
"""Speaking rates Festival is asked for (OpenAI's range for `speed`)."""
_FESTIVAL_PACKAGE = "festival"
_SECONDS_PER_SENTENCE = 10.0


class FestivalError(VocoderError):
    """Festival is missing, lacks a voice, or failed on a sentence; the message says what to do."""


class FestivalTimeout(FestivalError):
    """Festival ran past its time limit and was killed."""


@dataclass(frozen=True)
class FestivalUtterance:
    """What Festival made of one sentence: aligned labels, F0 targets on the label timeline, maybe a waveform."""

    text: str
    segments: list[Segment]
    targets: np.ndarray  # [n, 2]: time in seconds, F0 in Hz (voiced targets only)
    wave_path: Path | None


def get_voice(key: str) -> Voice:
    if key not in VOICES:
        raise FestivalError(f"unknown voice '{key}': choose one of {', '.join(VOICES)}")
    return VOICES[key]


def festival_binary() -> str:
    path = shutil.which("festival")
    if path is None:
        raise FestivalError(
            f"the 'festival' program is not installed: install the Debian package '{_FESTIVAL_PACKAGE}' "
            "(apt-get install festival), or run `make install`"
        )
    return path


def to_festival_text(text: str) -> str:
    """Festival reads Latin-1 bytes: fold to ASCII, one line, and escape for a Scheme string literal."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    single_line = " ".join(folded.split())
    return single_line.replace("\\", "\\\\").replace('"', '\\"')


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _driver(voice: Voice, sentences: Sequence[str], prefixes: Sequence[Path], wave: bool, speed: float) -> str:
    lines = [
        f"(if (not (member '{voice.festival_name} (voice.list)))",
        '    (begin (format t "VOCODER-NO-VOICE\\n") (exit 3)))',
        f"(load {_scheme_string(str(DUMP_SCRIPT))})",
        f"({voice.select_function})",
    ]
    if speed != 1.0:  # diphone voices stretch Festival's durations; HTS voices take their engine's speech rate
        lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / speed!r})")
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {float(speed)!r}))))')
    flag = "t" if wave else "nil"
    for sentence, prefix in zip(sentences, prefixes, strict=True):
        lines.append(f'(vocoder_dump "{to_festival_text(sentence)}" {_scheme_string(str(prefix))} {flag})')
    return "\n".join(lines) + "\n"


def _read_targets(path: Path, segments: Sequence[Segment]) -> np.ndarray:
    """F0 targets mapped from the intonation module's segment times into the labels' final times."""
    spans: list[tuple[float, float]] = []
    targets: list[tuple[int, float, float]] = []
    for line in path.read_text().splitlines():
        kind, first, second = line.split()
        if kind == "S":
            spans.append((float(first), float(second)))
        elif float(second) > 0:
            targets.append((len(spans) - 1, float(first), float(second)))
    if len(spans) != len(segments):
        raise FestivalError(f"{path}: {len(spans)} segments in the F0 dump but {len(segments)} in the labels")
    mapped = []
    for index, time, hz in targets:
        old_start, old_end = spans[index]
        fraction = 0.0 if old_end <= old_start else min(max((time - old_start) / (old_end - old_start), 0.0), 1.0)
        start = segments[index].start / UNITS_PER_SECOND
        end = segments[index].end / UNITS_PER_SECOND
        mapped.append((start + fraction * (end - start), hz))
    return np.array(sorted(mapped), dtype=np.float64).reshape(-1, 2)


def run_festival(
    sentences: Sequence[str],
    voice_key: str,
    workdir: Path,
    wave: bool = False,
    timeout: float | None = None,
    speed: float = 1.0,
) -> list[FestivalUtterance]:
    """Synthesise each sentence with one voice; files go to `workdir` as 0000.lab, 0000.f0, 0000.wav, ...

    Festival is killed after `timeout` seconds (default: generous for the sentence count), so a service can
    bound what one text costs. `speed` > 1 speaks faster (Festival's durations divided by it)."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise FestivalError(f"speed: expected {MIN_SPEED} to {MAX_SPEED}, found {speed}")
    voice = get_voice(voice_key)
    binary = festival_binary()
    for number, sentence in enumerate(sentences):
        if not to_festival_text(sentence).strip():
            raise FestivalError(f"sentence {number + 1} has no text Festival can read: {sentence!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    prefixes = [workdir / f"{number:04d}" for number in range(len(sentences))]
    driver = workdir / "driver.scm"
    driver.write_text(_driver(voice, sentences, prefixes, wave, speed))
    try:
        result = subprocess.run(
            [binary, "-b", str(driver)],
            capture_output=True,
            text=True,
            timeout=timeout if timeout is not None else 30 + _SECONDS_PER_SENTENCE * len(sentences),
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise FestivalTimeout(f"Festival did not finish {len(sentences)} sentences in time") from None
    output = result.stdout + result.stderr
    if "VOCODER-NO-VOICE" in output:
        raise FestivalError(
            f"Festival has no voice '{voice.festival_name}': install the Debian package '{voice.package}'"
        )
    utterances = []
    for sentence, prefix in zip(sentences, prefixes, strict=True):
        labels = prefix.with_suffix(".lab")
        if f"VOCODER-ERROR {prefix}" in output or not labels.is_file() or labels.stat().st_size == 0:
            raise FestivalError(f"Festival failed on {sentence!r}: {output.strip()[-500:] or 'no output'}")
        segments = read_labels(labels)
        wave_path = prefix.with_suffix(".wav") if wave else None
        if wave_path is not None and not wave_path.is_file():
            raise FestivalError(f"Festival wrote no waveform for {sentence!r}")
        targets = _read_targets(prefix.with_suffix(".f0"), segments)
        utterances.append(FestivalUtterance(sentence, segments, targets, wave_path))
    return utterances
