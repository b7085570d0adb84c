"""Build a self-contained MOS (ITU-T P.800 ACR) listening-test package and its unblinding key.

The package is `index.html` (one file, inline script and style, playlists embedded) plus `audio/<id>.wav`;
it runs from file:// or any static host. Stimuli are loudness-normalised (ITU-R BS.1770, pyloudnorm) and carry
random ids. Which system and utterance an id is goes only into the key, written outside the package.

Design: every (system, utterance) cell is a test item. Listener playlists take consecutive windows of the
sequence position p -> (utterance p mod U, system (p mod U + p div U) mod C), so every U*C consecutive positions
hold each cell exactly once: cells are rated evenly, no listener hears an utterance twice in the test items,
and each listener hears the systems in near-equal numbers. Each playlist is then shuffled and gold items
(natural reference, degraded low anchor) are mixed in.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy import signal

from vocoder.audio import load_wav, save_wav
from vocoder.constants import DEFAULT_GOLD_PER_KIND
from vocoder.errors import VocoderError
from vocoder.eval.pairing import Pairing, pair_files

PEAK_CEILING_DBFS = -1.0
ANCHOR_CUTOFF_HZ = 1000.0
ANCHOR_SNR_DB = 5.0
ANCHOR_BITS = 6
ANCHOR_RECIPE = (
    f"8th-order Butterworth low-pass at {ANCHOR_CUTOFF_HZ:g} Hz, white noise at {ANCHOR_SNR_DB:g} dB SNR, "
    f"uniform quantisation to {ANCHOR_BITS} bits"
)


class MosExportError(VocoderError):
    """A listening-test package that cannot be built from the given inputs."""


@dataclass(frozen=True)
class Stimulus:
    """One audio file of the package and what the key says about it."""

    kind: str
    system: str
    utterance: str
    source: str
    loudness_in_lufs: float
    gain_db: float
    loudness_out_lufs: float
    peak_limited: bool


def low_anchor(wav: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A deliberately bad version of the reference (ANCHOR_RECIPE) that attentive listeners rate low."""
    sos = signal.butter(8, ANCHOR_CUTOFF_HZ, fs=sample_rate, output="sos")
    muffled = signal.sosfilt(sos, wav)
    noise_rms = np.sqrt(np.mean(muffled**2)) / 10 ** (ANCHOR_SNR_DB / 20)
    noisy = muffled + rng.normal(0.0, noise_rms, wav.size)
    steps = 2 ** (ANCHOR_BITS - 1)
    peak = max(float(np.max(np.abs(noisy))), 1e-9)
    return (np.round(noisy / peak * steps) / steps * peak).astype(np.float32)


def normalise_loudness(
    wav: np.ndarray, sample_rate: int, target_lufs: float, source: str
) -> tuple[np.ndarray, float, float, bool]:
    """Gain to the BS.1770 integrated-loudness target, lowered if the peak would pass PEAK_CEILING_DBFS.

    Returns the waveform, its input loudness, the gain applied (dB) and whether the peak limited the gain.
    """
    try:
        loudness = float(pyloudnorm.Meter(sample_rate).integrated_loudness(wav.astype(np.float64)))
    except ValueError as error:
        raise MosExportError(f"{source}: cannot measure loudness: {error}") from None
    if not math.isfinite(loudness):
        raise MosExportError(f"{source}: the audio is silent (loudness below the BS.1770 gate)")
    gain_db = target_lufs - loudness
    peak = float(np.max(np.abs(wav)))
    ceiling_gain_db = PEAK_CEILING_DBFS - 20 * math.log10(peak)
    limited = gain_db > ceiling_gain_db
    gain_db = min(gain_db, ceiling_gain_db)
    return (wav * 10 ** (gain_db / 20)).astype(np.float32), loudness, gain_db, limited


def latin_square_cells(
    utterances: list[str], systems: list[str], listeners: int, items: int
) -> list[list[tuple[str, str]]]:
    """(system, utterance) test cells per listener; see the module docstring for the balance argument."""
    count_u, count_c = len(utterances), len(systems)
    playlists = []
    for listener in range(listeners):
        cells = []
        for position in range(listener * items, (listener + 1) * items):
            utterance = position % count_u
            system = (utterance + position // count_u) % count_c
            cells.append((systems[system], utterances[utterance]))
        playlists.append(cells)
    return playlists


def default_key_path(package: Path) -> Path:
    """`PKG.key.json` beside the package directory."""
    return package.with_name(package.name + ".key.json")


def export_package(
    reference_dir: Path,
    systems: list[tuple[str, Path]],
    package: Path,
    key_path: Path | None = None,
    items_per_listener: int | None = None,
    listeners: int | None = None,
    seed: int = 0,
    loudness_lufs: float = -23.0,
    sample_rate: int = 16000,
    gold_per_kind: int | None = None,
    familiarisation: int = 3,
) -> dict:
    """Write the package and its key; returns the key (a JSON-ready dict). `gold_per_kind` defaults to
    `DEFAULT_GOLD_PER_KIND`, or to the number of utterances where there are fewer (a gold item never repeats)."""
    key_path = key_path or default_key_path(package)
    if key_path.resolve().is_relative_to(package.resolve()):
        raise MosExportError(f"key {key_path} must be outside the package {package}, or listeners could read it")
    if package.exists() and any(package.iterdir()):
        raise MosExportError(f"{package} exists and is not empty; choose a new --out directory")
    pairing = pair_files(reference_dir, systems)
    names = [name for name, _ in systems]
    utterances = sorted(u for u in pairing.reference if all(u in pairing.systems[name] for name in names))
    dropped = sorted(set(pairing.reference) - set(utterances))
    if not utterances:
        raise MosExportError("no utterance is present in the reference and in every system")
    items = items_per_listener or len(utterances)
    if not 1 <= items <= len(utterances):
        raise MosExportError(
            f"--items-per-listener {items}: must be 1..{len(utterances)} (one item per utterance per listener)"
        )
    listeners = listeners or math.ceil(len(utterances) * len(names) / items)
    if listeners < 1:
        raise MosExportError(f"--listeners {listeners}: must be at least 1")
    if gold_per_kind is None:
        gold_per_kind = min(DEFAULT_GOLD_PER_KIND, len(utterances))
    if gold_per_kind < 0 or familiarisation < 0:
        raise MosExportError("--gold-per-kind and --familiarisation must not be negative")
    if familiarisation > (len(names) + 2) * len(utterances):
        raise MosExportError(f"--familiarisation {familiarisation}: more examples than distinct stimuli")
    if gold_per_kind > len(utterances):
        raise MosExportError(
            f"--gold-per-kind {gold_per_kind}: at most {len(utterances)}, so no gold item repeats in a playlist"
        )

    # Built under a hidden name and renamed at the end, so a failure never leaves a half-written package.
    staging = package.with_name(f".{package.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        key = _build(
            staging,
            pairing,
            names,
            utterances,
            items,
            listeners,
            seed,
            loudness_lufs,
            sample_rate,
            gold_per_kind,
            familiarisation,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if package.exists():
        package.rmdir()
    staging.rename(package)
    key.update(
        reference_dir=str(reference_dir),
        systems={name: str(directory) for name, directory in systems},
        dropped_utterances=dropped,
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")
    return key


def _build(
    package: Path,
    pairing: Pairing,
    names: list[str],
    utterances: list[str],
    items: int,
    listeners: int,
    seed: int,
    loudness_lufs: float,
    sample_rate: int,
    gold_per_kind: int,
    familiarisation: int,
) -> dict:
    """Write the stimuli and the page into `package`; returns the key without the input description."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    stimuli: dict[str, Stimulus] = {}
    by_cell: dict[tuple[str, str, str], str] = {}
    audio_dir = package / "audio"

    def stimulus(kind: str, system: str, utterance: str) -> str:
        """The id of the (kind, system, utterance) file, writing it on first use."""
        cell = (kind, system, utterance)
        if cell in by_cell:
            return by_cell[cell]
        if system == "anchor":
            source = pairing.reference[utterance]
            wav = low_anchor(load_wav(source, sample_rate), sample_rate, noise)
        else:
            source = pairing.reference[utterance] if system == "reference" else pairing.systems[system][utterance]
            wav = load_wav(source, sample_rate)
        scaled, loudness, gain, limited = normalise_loudness(wav, sample_rate, loudness_lufs, str(source))
        while (stimulus_id := f"{rng.getrandbits(48):012x}") in stimuli:
            pass
        save_wav(audio_dir / f"{stimulus_id}.wav", scaled, sample_rate)
        stimuli[stimulus_id] = Stimulus(
            kind,
            system,
            utterance,
            str(source),
            round(loudness, 2),
            round(gain, 2),
            round(loudness + gain, 2),
            limited,
        )
        by_cell[cell] = stimulus_id
        return stimulus_id

    # Examples cycle through the conditions; a repeated condition moves to the next utterance, so none repeats.
    conditions = ["reference", "anchor", *names]
    start = rng.randrange(len(utterances))
    familiar = [
        stimulus(
            "familiarisation",
            conditions[i % len(conditions)],
            utterances[(start + i // len(conditions)) % len(utterances)],
        )
        for i in range(familiarisation)
    ]
    playlists = []
    for number, cells in enumerate(latin_square_cells(utterances, names, listeners, items), start=1):
        trials = [stimulus("test", system, utterance) for system, utterance in cells]
        rng.shuffle(trials)
        heard = {utterance for _, utterance in cells}
        fresh = [u for u in utterances if u not in heard]
        for kind, condition in (("gold_reference", "reference"), ("gold_anchor", "anchor")):
            # Distinct utterances, preferring ones this listener does not hear among the test items.
            chosen = rng.sample(fresh, min(gold_per_kind, len(fresh)))
            chosen += rng.sample(sorted(heard), gold_per_kind - len(chosen))
            for utterance in chosen:
                trials.insert(rng.randint(1, len(trials)), stimulus(kind, condition, utterance))
        playlists.append(
            {
                "number": number,
                "completion_code": f"{rng.getrandbits(32):08X}",
                "familiarisation": familiar,
                "trials": trials,
            }
        )

    package_id = f"{rng.getrandbits(32):08x}"
    page_config = {"package_id": package_id, "audio_dir": "audio", "playlists": playlists}
    template = resources.files("vocoder").joinpath("data/mos_page.html").read_text(encoding="utf-8")
    embedded = json.dumps(page_config, separators=(",", ":")).replace("</", "<\\/")
    page = template.replace("__MOS_CONFIG__", embedded).replace("__MOS_PLAYLISTS__", str(len(playlists)))
    (package / "index.html").write_text(page, encoding="utf-8")
    return {
        "package_id": package_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "sample_rate": sample_rate,
        "loudness_target_lufs": loudness_lufs,
        "peak_ceiling_dbfs": PEAK_CEILING_DBFS,
        "anchor": ANCHOR_RECIPE,
        "utterances": utterances,
        "items_per_listener": items,
        "listeners": listeners,
        "playlists": playlists,
        "stimuli": {stimulus_id: asdict(item) for stimulus_id, item in stimuli.items()},
    }
