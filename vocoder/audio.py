"""Waveform I/O and mu-law companding.

Waveforms are float32 mono arrays in [-1, 1]. mu-law maps them to mu + 1 class ids (256 for mu = 255), the
categories the WaveNet predicts; the formulas match torchaudio's `mu_law_encoding` / `mu_law_decoding`.
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import soundfile
import torch
from scipy import signal

from vocoder.errors import VocoderError


class AudioFileError(VocoderError):
    """An audio file that cannot be read; the message names the file."""


def load_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read any soundfile-readable file as float32 mono at `sample_rate` (resampled if needed)."""
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioFileError(f"{path}: cannot read audio: {error}") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    wav = data.mean(axis=1)
    if file_rate != sample_rate:
        wav = librosa.resample(wav, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    if not np.all(np.isfinite(wav)):
        raise AudioFileError(f"{path}: the audio holds NaN or infinite samples")
    return np.ascontiguousarray(wav, dtype=np.float32)


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


def save_wav(path: str | Path, wav: np.ndarray, sample_rate: int, audio_format: str = "pcm16") -> None:
    """Write a waveform; written to a temporary name first, so a crash never leaves a truncated file."""
    container, subtype = AUDIO_FORMATS[audio_format]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    soundfile.write(str(temporary), np.clip(wav, -1.0, 1.0), sample_rate, subtype=subtype, format=container)
    temporary.replace(path)


def preemphasize(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """`s[t] - a * s[t-1]` (s[-1] = 0), clipped to [-1, 1]: the signal a noise-shaped model predicts."""
    if coefficient == 0:
        return wav
    shaped = signal.lfilter([1.0, -coefficient], [1.0], wav.astype(np.float64))
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
        rows = np.atleast_2d(chunk).astype(np.float64)
        out, self.state = signal.lfilter([1.0], [1.0, -self.coefficient], rows, axis=-1, zi=self.state)
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


def mu_law_decode(ids: torch.Tensor, mu: int = 255, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class ids in [0, mu] to waveform values in [-1, 1] (each bin's centre in the companded domain)."""
    companded = ids.to(dtype) / mu * 2 - 1
    return torch.sign(companded) * (torch.pow(1.0 + mu, companded.abs()) - 1) / mu


def mu_law_bin_centres(mu: int = 255, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The waveform value of every class id: the support of the model's categorical distribution."""
    return mu_law_decode(torch.arange(mu + 1), mu, dtype)
