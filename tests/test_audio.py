from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF

from vocoder.audio import AudioFileError, load_wav, mu_law_bin_centres, mu_law_decode, mu_law_encode, save_wav


def test_mu_law_matches_torchaudio() -> None:
    x = torch.linspace(-1, 1, 100_001)
    assert torch.equal(mu_law_encode(x, 255), AF.mu_law_encoding(x, 256))
    ids = torch.arange(256)
    assert torch.allclose(mu_law_decode(ids, 255), AF.mu_law_decoding(ids, 256), atol=1e-6)


def test_mu_law_round_trip_error_is_within_half_a_bin() -> None:
    x = torch.linspace(-1, 1, 200_001, dtype=torch.float64)
    ids = mu_law_encode(x, 255)
    assert ids.min() == 0 and ids.max() == 255
    error = (mu_law_decode(ids, 255, torch.float64) - x).abs()
    # In the companded domain a value is at most half a bin (1/mu) from its bin's centre. The expansion's slope
    # is ln(1+mu)(1+mu|x|)/mu, and over half a bin it grows by at most (1+mu)^(1/mu): that bounds the error.
    mu = 255.0
    bound = np.log1p(mu) * (1 + mu * x.abs()) / mu * (1 + mu) ** (1 / mu) / mu + 1e-12
    assert torch.all(error <= bound)
    assert error.max() < 0.032  # the widest bins sit at full scale
    assert error[x.abs() < 0.01].max() < 1e-3  # fine resolution near silence


def test_mu_law_is_monotonic() -> None:
    x = torch.linspace(-1, 1, 50_001)
    assert torch.all(torch.diff(mu_law_encode(x)) >= 0)
    assert torch.all(torch.diff(mu_law_bin_centres()) > 0)


def test_mu_law_clamps_out_of_range() -> None:
    assert mu_law_encode(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_wav_round_trip_and_resampling(tmp_path: Path) -> None:
    wav = (0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32)
    path = tmp_path / "a.wav"
    save_wav(path, wav, 22050, "float")
    assert np.allclose(load_wav(path, 22050), wav, atol=1e-7)
    resampled = load_wav(path, 16000)
    assert abs(len(resampled) - 16000) <= 1
    assert not list(tmp_path.glob(".*partial"))


def test_unreadable_and_empty_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioFileError, match="junk.wav: cannot read audio"):
        load_wav(junk, 16000)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioFileError, match="empty.wav: the file holds no samples"):
        load_wav(empty, 16000)
