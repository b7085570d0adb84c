"""The feature file: the one contract between front ends (audio, text, corpora) and models.

One `.npz` per utterance, always read with `allow_pickle=False`. Arrays are frame-major (`[frames, dims]`).
See docs/FEATURES.md for the format and docs of every field.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vocoder.atomic import atomic_path
from vocoder.config import Config
from vocoder.errors import VocoderError
from vocoder.vocabulary import CONDITIONING_ARRAYS, MATRIX_ARRAYS

FEATURE_FILE_VERSION = 1
AUDIO_MAGIC = {b"RIFF": "WAV", b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3\x03": "MP3", b"FORM": "AIFF"}
"""The first four bytes of audio files that people pass as features by mistake."""


class FeatureFileError(VocoderError):
    """A feature file that a model cannot read; says which file, which field, what was expected and found."""

    def __init__(self, source: str, field_name: str, expected: str, found: str) -> None:
        self.source, self.field, self.expected, self.found = source, field_name, expected, found
        super().__init__(f"{source}: field '{field_name}': expected {expected}, found {found}")


def f0_hz(lf0: np.ndarray, vuv: np.ndarray) -> np.ndarray:
    """F0 in Hz, 0 where unvoiced, from a feature file's continuous log-F0 (interpolated through unvoiced frames,
    `vocoder.features.acoustic.continuous_log_f0`) and its voiced flag: `exp(lf0) * vuv`."""
    return (np.exp(lf0) * vuv).astype(np.float32)


@dataclass(frozen=True, eq=False)  # arrays do not compare with ==
class Features:
    """Conditioning for one utterance: frame-rate arrays, their rate, and an optional speaker."""

    sample_rate: int
    hop_length: int
    mel: np.ndarray | None = None  # [frames, n_mels] float32, natural-log mel magnitudes
    lf0: np.ndarray | None = None  # [frames] float32, continuous (interpolated) log-F0 in log Hz
    vuv: np.ndarray | None = None  # [frames] float32, 1 voiced / 0 unvoiced
    linguistic: np.ndarray | None = None  # [frames, D] float32, HTS question answers + positions
    speaker: str | None = None
    source: str = field(default="<memory>", compare=False)  # where it came from, for error messages

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in CONDITIONING_ARRAYS if getattr(self, name) is not None}

    @property
    def n_frames(self) -> int:
        lengths = {len(array) for array in self.arrays().values()}
        if len(lengths) != 1:
            raise FeatureFileError(self.source, "frames", "all arrays with one frame count", str(sorted(lengths)))
        return lengths.pop()

    @property
    def n_samples(self) -> int:
        return self.n_frames * self.hop_length

    def with_speaker(self, speaker: str | None) -> Features:
        return replace(self, speaker=speaker)

    def f0_hz(self) -> np.ndarray:
        """`[frames]` float32 F0 in Hz, 0 where unvoiced (`f0_hz` of `lf0` and `vuv`): what a student's harmonic
        source reads. The file must hold both (`validate_features` checks that for such a student)."""
        if self.lf0 is None or self.vuv is None:
            missing = "lf0" if self.lf0 is None else "vuv"
            raise FeatureFileError(self.source, missing, "an array of width 1 (F0 for the harmonic source)", "nothing")
        return f0_hz(self.lf0, self.vuv)

    def conditioning(self, config: Config) -> np.ndarray:
        """The `[frames, dim]` float32 matrix the model reads, after validating against `config`."""
        validate_features(self, config)
        columns = [getattr(self, name).reshape(self.n_frames, -1) for name in config.features.conditioning]
        return np.concatenate(columns, axis=1).astype(np.float32, copy=False)


def save_features(path: str | Path, features: Features) -> Path:
    """Write atomically (temporary file, then rename); returns the path written."""
    path = Path(path)
    payload: dict[str, np.ndarray] = {
        "version": np.array(FEATURE_FILE_VERSION, dtype=np.int32),
        "sample_rate": np.array(features.sample_rate, dtype=np.int32),
        "hop_length": np.array(features.hop_length, dtype=np.int32),
    }
    payload.update({name: np.asarray(array, dtype=np.float32) for name, array in features.arrays().items()})
    if features.speaker is not None:
        payload["speaker"] = np.array(features.speaker, dtype=np.str_)
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez_compressed(handle, **payload)
    return path


def _scalar_int(members: dict[str, np.ndarray], key: str, source: str) -> int:
    if key not in members:
        raise FeatureFileError(source, key, "an integer scalar", "nothing (missing)")
    value = members[key]
    if value.shape != () or value.dtype.kind not in "iu":
        raise FeatureFileError(source, key, "an integer scalar", f"{value.dtype} array of shape {value.shape}")
    return int(value)


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_DAMAGE = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, MemoryError)
"""What a damaged member raises while read: a bad CRC or a false size (zipfile), a bad .npy header (numpy)."""


def _check_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, source: str) -> str:
    """The array name of one member, after checking its .npy header: numeric, no pickle, and not declaring more
    bytes than the member holds (a small file cannot make numpy allocate gigabytes)."""
    name = entry.filename.removesuffix(".npy")
    try:
        with archive.open(entry) as member:
            version = np.lib.format.read_magic(member)
            shape, _, dtype = _HEADER_READERS.get(version, np.lib.format.read_array_header_2_0)(member)
    except _DAMAGE as error:
        raise FeatureFileError(source, name, "a .npy array", f"no readable .npy header ({error})") from None
    if dtype.hasobject:
        raise FeatureFileError(source, name, "numeric arrays", "an object array (needs pickle: refused)")
    if math.prod(shape) * dtype.itemsize > entry.file_size:
        declared = f"shape {list(shape)} of {dtype}, more than the {entry.file_size} bytes it holds"
        raise FeatureFileError(source, name, "an array no larger than its data", declared)
    return name


def _read_members(archive: np.lib.npyio.NpzFile, source: str) -> dict[str, np.ndarray]:
    """Every member, each checked before it is read; any damage is an error naming the member."""
    names = [_check_member(archive.zip, entry, source) for entry in archive.zip.infolist()]
    members = {}
    for name in names:
        try:
            members[name] = archive[name]
        except _DAMAGE as error:
            raise FeatureFileError(source, name, "a readable .npy array", f"damaged data ({error})") from None
    return members


def _first_bytes(data: bytes | str | Path) -> bytes:
    if isinstance(data, bytes):
        return data[:4]
    with Path(data).open("rb") as handle:
        return handle.read(4)


def read_features(data: bytes | str | Path, source: str | None = None) -> Features:
    """Read a feature file from a path or from bytes (an upload). Never unpickles."""
    if source is None:
        source = str(data) if isinstance(data, str | Path) else "<upload>"
    try:
        head = _first_bytes(data)
    except FileNotFoundError:
        raise FeatureFileError(source, "file", "an existing .npz file", "no such file") from None
    except OSError as error:
        raise FeatureFileError(source, "file", "a readable .npz file", str(error)) from None
    if head in AUDIO_MAGIC:
        found = f"{AUDIO_MAGIC[head]} audio: make features of it with `vocoder extract`"
        raise FeatureFileError(source, "file", "an .npz feature file", found)
    if head[:2] != b"PK":  # numpy would offer to unpickle anything that is neither .npz nor .npy
        found = "a single .npy array" if head == b"\x93NUM" else "other data"
        raise FeatureFileError(source, "file", "an .npz feature file (a zip archive)", found)
    try:
        archive = np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False)
    except _DAMAGE as error:
        raise FeatureFileError(source, "file", "an .npz archive", f"unreadable data ({error})") from None
    with archive:
        members = _read_members(archive, source)
    version = _scalar_int(members, "version", source)
    if version != FEATURE_FILE_VERSION:
        raise FeatureFileError(source, "version", str(FEATURE_FILE_VERSION), str(version))
    known = {"version", "sample_rate", "hop_length", "speaker", *CONDITIONING_ARRAYS}
    unknown = sorted(set(members) - known)
    if unknown:
        raise FeatureFileError(source, unknown[0], f"one of {sorted(known)}", "an unknown array")
    arrays = {name: members[name] for name in CONDITIONING_ARRAYS if name in members}
    speaker = members.get("speaker")
    if speaker is not None and (speaker.shape != () or speaker.dtype.kind != "U"):
        raise FeatureFileError(source, "speaker", "a string scalar", f"{speaker.dtype} of shape {speaker.shape}")
    for name, array in arrays.items():
        if array.dtype.kind not in "fiub":
            raise FeatureFileError(source, name, "a numeric array", f"dtype {array.dtype}")
    return Features(
        sample_rate=_scalar_int(members, "sample_rate", source),
        hop_length=_scalar_int(members, "hop_length", source),
        speaker=None if speaker is None else str(speaker),
        source=source,
        **{name: array.astype(np.float32, copy=False) for name, array in arrays.items()},
    )


def made_by(conditioning: list[str] | tuple[str, ...]) -> str:
    """The command that writes features of this kind: where to send someone who has the wrong ones."""
    return "vocoder frontend" if "linguistic" in conditioning else "vocoder extract"


def validate_features(features: Features, config: Config, require_speaker: bool = True, model: str = "MODEL") -> None:
    """Raise FeatureFileError unless `features` fit the model described by `config` (named `model` in messages).

    `require_speaker=False` accepts a file without a speaker (one can be chosen at synthesis time)."""
    source, wanted = features.source, config.features
    found = list(features.arrays())
    if found and made_by(found) != made_by(wanted.conditioning):  # the other kind: no detail below would help
        source_of = "text" if "linguistic" in wanted.conditioning else "audio"
        raise FeatureFileError(
            source,
            "conditioning",
            f"{' + '.join(wanted.conditioning)}, what {model} reads (make them from {source_of} with "
            f"`{made_by(wanted.conditioning)} --model {model}`)",
            f"{' + '.join(found)}, which `{made_by(found)}` makes for other models",
        )
    if features.sample_rate != config.audio.sample_rate:
        raise FeatureFileError(source, "sample_rate", str(config.audio.sample_rate), str(features.sample_rate))
    if features.hop_length != wanted.hop_length:
        raise FeatureFileError(source, "hop_length", str(wanted.hop_length), str(features.hop_length))
    source_f0 = [name for name in config.feature_arrays() if name not in wanted.conditioning]
    if missing_f0 := [name for name in source_f0 if getattr(features, name) is None]:  # a mel-only file, usually
        raise FeatureFileError(
            source,
            missing_f0[0],
            f"{' and '.join(source_f0)}, the recording's F0 ({model}'s harmonic source reads F0 beside the "
            f"{' + '.join(wanted.conditioning)}: `vocoder extract --model {model}` writes them)",
            f"no {' and no '.join(missing_f0)}",
        )
    required = config.feature_arrays()
    for name, width in config.extracted_array_dims().items():
        array = getattr(features, name)
        if array is None and name not in required:  # voicing for a voicing-tied sampling: optional
            continue
        if array is None:
            raise FeatureFileError(source, name, f"an array of width {width}", "nothing (missing)")
        expected_shape = f"[frames, {width}]" if name in MATRIX_ARRAYS else "[frames]"
        if name in MATRIX_ARRAYS:
            if array.ndim != 2 or array.shape[1] != width:
                raise FeatureFileError(source, name, f"shape {expected_shape}", f"shape {list(array.shape)}")
        elif array.ndim != 1:
            raise FeatureFileError(source, name, f"shape {expected_shape}", f"shape {list(array.shape)}")
        if not np.all(np.isfinite(array)):
            raise FeatureFileError(source, name, "finite values", "NaN or infinite values")
        if name == "vuv" and not np.all((array == 0) | (array == 1)):
            raise FeatureFileError(source, name, "0 (unvoiced) or 1 (voiced) per frame", "other values")
    n_frames = features.n_frames
    if n_frames == 0:
        raise FeatureFileError(source, "frames", "at least one frame", "0")
    if n_frames > wanted.max_frames:
        raise FeatureFileError(source, "frames", f"at most {wanted.max_frames} frames", str(n_frames))
    if config.speakers:
        if features.speaker is None and require_speaker:
            raise FeatureFileError(source, "speaker", f"one of {config.speakers}", "no speaker")
        if features.speaker is not None and features.speaker not in config.speakers:
            raise FeatureFileError(source, "speaker", f"one of {config.speakers}", repr(features.speaker))
