"""Waveforms to response bytes: whole files, or a WAV header plus chunks for streaming.

A streamed WAV's header is written before the audio exists, with the sizes it will have: the teacher generates
exactly `frames * hop` samples, so the length is known in advance and players need no seeking or patching.
"""

from __future__ import annotations

import io
import struct
from typing import get_args

import numpy as np
import soundfile

from vocoder.audio import AUDIO_FORMATS, full_scale
from vocoder_server.schemas import AudioFormat

assert set(get_args(AudioFormat)) == set(AUDIO_FORMATS)  # the formats a request may name are those save_wav writes

RAW_PCM = "pcm"
"""Headerless 16-bit little-endian mono samples (OpenAI's `pcm`), as a streamed pcm16 WAV holds them."""
MEDIA_TYPES = {"pcm16": "audio/wav", "float": "audio/wav", "flac": "audio/flac", RAW_PCM: "audio/pcm"}
STREAMABLE = ("pcm16", "float")
_WAVE_FORMAT = {"pcm16": (1, 16), "float": (3, 32)}  # format tag (PCM, IEEE float) and bits per sample


def encode_audio(wav: np.ndarray, sample_rate: int, audio_format: str) -> bytes:
    """A complete file in one of `AUDIO_FORMATS` (or `RAW_PCM`), samples clipped to [-1, 1] as `save_wav` does."""
    if audio_format == RAW_PCM:
        return encode_chunk(wav, "pcm16")
    container, subtype = AUDIO_FORMATS[audio_format]
    buffer = io.BytesIO()
    soundfile.write(buffer, full_scale(wav), sample_rate, subtype=subtype, format=container)
    return buffer.getvalue()


def wav_header(n_samples: int, sample_rate: int, audio_format: str) -> bytes:
    """The 44-byte header of a mono WAV of `n_samples` samples (PCM 16 bit or IEEE float 32 bit)."""
    tag, bits = _WAVE_FORMAT[audio_format]
    block = bits // 8
    data_size = n_samples * block
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, tag, 1, sample_rate, sample_rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data_size)
    )


def encode_chunk(chunk: np.ndarray, audio_format: str) -> bytes:
    """Raw little-endian samples of a streamed chunk, in the header's encoding; 16-bit samples are converted as
    libsndfile converts whole files (floor of x * 32768, clipped), so a streamed and a whole file hold the same
    samples."""
    clipped = full_scale(chunk)
    if audio_format == "pcm16":
        return np.clip(np.floor(clipped.astype(np.float64) * 32768), -32768, 32767).astype("<i2").tobytes()
    return clipped.astype("<f4").tobytes()
