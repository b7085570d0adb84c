"""Waveform I/O and mu-law companding.

Waveforms are float32 mono arrays in [-1, 1]. mu-law maps them to mu + 1 class ids (256 for mu = 255), the
categories the WaveNet predicts; the formulas match torchaudio's `mu_law_encoding` / `mu_law_decoding`.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import librosa
import numpy as np
import soundfile
import torch

from vocoder.atomic import atomic_path
from vocoder.errors import VocoderError


class AudioFileError(VocoderError):
    """An audio file that cannot be read; the message names the file."""


MAX_CHANNELS = 8
MIN_RATE, MAX_RATE = 4000, 384000
"""Input files beyond these are refused: nothing real has more channels, and extreme rates only cost memory."""


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file at the rate asked for, and what it was before conversion."""

    wav: np.ndarray  # float32 mono
    file_rate: int
    channels: int

    def conversion(self, sample_rate: int) -> str:
        """What was done to reach `sample_rate` mono, in words ('none' when nothing was)."""
        steps = []
        if self.file_rate != sample_rate:
            steps.append(f"resampled {self.file_rate} Hz to {sample_rate} Hz")
        if self.channels > 1:
            steps.append(f"mixed {self.channels} channels down to mono")
        return "; ".join(steps) or "none"


def decode_audio(
    source: str | Path | BinaryIO, sample_rate: int, name: str, max_seconds: float | None = None
) -> DecodedAudio:
    """Read any libsndfile format (WAV, FLAC, OGG, ...) in-process as float32 mono at `sample_rate`: channels are
    averaged, other rates resampled. With `max_seconds`, at most that much is decoded (whatever the header
    claims) and a longer file is an `AudioFileError`. Errors name the file as `name`."""
    try:
        with soundfile.SoundFile(str(source) if isinstance(source, str | Path) else source) as file:
            file_rate, channels = file.samplerate, file.channels
            if channels > MAX_CHANNELS:
                raise AudioFileError(f"{name}: {channels} channels; at most {MAX_CHANNELS} are mixed down")
            if not MIN_RATE <= file_rate <= MAX_RATE:
                raise AudioFileError(f"{name}: sample rate {file_rate} Hz; expected {MIN_RATE} to {MAX_RATE} Hz")
            allowed = -1 if max_seconds is None else math.floor(max_seconds * file_rate)
            data = file.read(allowed + 1 if allowed >= 0 else -1, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as error:
        raise AudioFileError(f"{name}: cannot read audio: {error}") from None
    if max_seconds is not None and data.shape[0] > allowed:
        raise AudioFileError(f"{name}: longer than {max_seconds:g} s")
    if data.shape[0] == 0:
        raise AudioFileError(f"{name}: the file holds no samples")
    wav = data.mean(axis=1)
    if not np.all(np.isfinite(wav)):
        raise AudioFileError(f"{name}: the audio holds NaN or infinite samples")
    if file_rate != sample_rate:
        wav = librosa.resample(wav, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return DecodedAudio(np.ascontiguousarray(wav, dtype=np.float32), file_rate, channels)


def load_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read any soundfile-readable file as float32 mono at `sample_rate` (resampled if needed)."""
    return decode_audio(path, sample_rate, str(path)).wav


WAV_MAX_CHUNKS = 64
"""Chunks looked through for a WAV's data chunk (canonical files have 2 to 4 before it)."""


def wav_shortfall(path: str | Path) -> tuple[int, int] | None:
    """(claimed, present): the bytes a RIFF/WAVE file's data chunk claims and the bytes the file holds after its
    header, when it claims more; None for a file that holds what it claims, or that is no RIFF/WAVE file.

    libsndfile reads such a file without a word, as much audio as there is: a file cut short by an interrupted
    copy, or one written to a pipe, whose writer could not go back to fill in the size (0xFFFFFFFF or 0 left)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            offset = 12
            for _ in range(WAV_MAX_CHUNKS):
                if offset + 8 > size:
                    return None
                handle.seek(offset)
                chunk, claimed = struct.unpack("<4sI", handle.read(8))
                if chunk == b"data":
                    present = size - offset - 8
                    return (claimed, present) if claimed > present else None
                offset += 8 + claimed + (claimed & 1)
    except OSError:
        return None
    return None


AUDIO_FORMATS = {"pcm16": ("WAV", "PCM_16"), "float": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_16")}


def full_scale(wav: np.ndarray) -> np.ndarray:
    """`wav` clipped to [-1, 1]: what every writer keeps of it (WAV, FLAC, the service's PCM). A model's output can
    pass full scale: de-emphasis turns the model's bounded signal into one that is not."""
    return np.clip(wav, -1.0, 1.0)


def save_wav(path: str | Path, wav: np.ndarray, sample_rate: int, audio_format: str = "pcm16") -> None:
    """Write a waveform; written to a temporary name first, so a crash never leaves a truncated file."""
    container, subtype = AUDIO_FORMATS[audio_format]
    with atomic_path(Path(path)) as temporary:
        soundfile.write(str(temporary), full_scale(wav), sample_rate, subtype=subtype, format=container)


def preemphasize(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """`s[t] - a * s[t-1]` (s[-1] = 0), clipped to [-1, 1]: the signal a noise-shaped model predicts."""
    if coefficient == 0:
        return wav
    from scipy.signal import lfilter  # here: scipy.signal costs 0.7 s of CPU to import, most models never need it

    shaped = lfilter([1.0, -coefficient], [1.0], wav.astype(np.float64))
    return np.clip(shaped, -1.0, 1.0).astype(np.float32)


class Deemphasis:
    """The inverse filter `y[t] = x[t] + a * y[t-1]`, stateful across chunks, so a waveform de-emphasised chunk by
    chunk equals the whole one; one state per row of a batch."""

    def __init__(self, coefficient: float, rows: int = 1) -> None:
        self.coefficient = coefficient
        self.state = np.zeros((rows, 1))

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """`chunk [rows, samples]` (or `[samples]` for one row) in the model's domain -> output waveform."""
        if self.coefficient == 0:
            return chunk
        from scipy.signal import lfilter  # see preemphasize

        rows = np.atleast_2d(chunk).astype(np.float64)
        out, self.state = lfilter([1.0], [1.0, -self.coefficient], rows, axis=-1, zi=self.state)
        return out.reshape(chunk.shape).astype(np.float32)


def deemphasize(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """Undo `preemphasize` on a whole waveform `[samples]` or batch `[rows, samples]`."""
    return Deemphasis(coefficient, np.atleast_2d(wav).shape[0])(wav)


@lru_cache(maxsize=16)
def _mu_constant(mu: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """mu as a tensor, made once per device: a CUDA graph being captured cannot copy it from the host. A normal
    (not inference-mode) tensor, so that autograd may save it wherever it is first made."""
    with torch.inference_mode(False):
        return torch.tensor(float(mu), dtype=dtype, device=device)


def mu_law_position(wav: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform (clamped to [-1, 1]) to its continuous position in [0, mu] on the class axis: class k is centred
    at k. Differentiable, for relaxations of the class ids."""
    wav = wav.clamp(-1.0, 1.0)
    mu_tensor = _mu_constant(mu, wav.dtype, wav.device)
    companded = torch.sign(wav) * torch.log1p(mu_tensor * wav.abs()) / torch.log1p(mu_tensor)
    return (companded + 1) / 2 * mu


def mu_law_encode(wav: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform in [-1, 1] to int64 class ids in [0, mu]."""
    return (mu_law_position(wav, mu) + 0.5).to(torch.int64)


def _float32_from_order(keys: torch.Tensor) -> torch.Tensor:
    """int64 keys -> float32 values, in the same order: key k >= 0 is the float whose bits are k, -k its negation
    (so consecutive keys are adjacent floats, and bisection over keys is bisection over the floats)."""
    magnitude = keys.abs().to(torch.int32).view(torch.float32)
    return torch.where(keys < 0, -magnitude, magnitude)


@lru_cache(maxsize=4)
def mu_law_thresholds(mu: int = 255) -> torch.Tensor:
    """`[mu]` float32: entry k - 1 is the smallest float32 value that `mu_law_encode` maps to class k or above.
    A compiled generator encodes a value as the number of thresholds at or below it, which reproduces this module's
    float32 arithmetic (its log1p included) bit for bit without computing it. Found by bisection over the floats
    in [-1, 1] with `mu_law_encode` itself (32 calls); the encoding is monotone, so one threshold per class."""
    classes = torch.arange(1, mu + 1)
    one = int(torch.tensor(1.0).view(torch.int32))
    low = torch.full((mu,), -one, dtype=torch.int64)  # -1.0: class 0, below every threshold
    high = torch.full((mu,), one, dtype=torch.int64)  # 1.0: class mu, at or above every threshold
    while bool((high - low > 1).any()):
        middle = (low + high) // 2
        reached = mu_law_encode(_float32_from_order(middle), mu) >= classes
        high, low = torch.where(reached, middle, high), torch.where(reached, low, middle)
    return _float32_from_order(high)


def mu_law_decode(ids: torch.Tensor, mu: int = 255, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class ids in [0, mu] to waveform values in [-1, 1] (each bin's centre in the companded domain)."""
    companded = ids.to(dtype) / mu * 2 - 1
    return torch.sign(companded) * (torch.pow(1.0 + mu, companded.abs()) - 1) / mu


def mu_law_bin_centres(mu: int = 255, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The waveform value of every class id: the support of the model's categorical distribution."""
    return mu_law_decode(torch.arange(mu + 1), mu, dtype)
