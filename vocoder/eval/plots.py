"""Report figures (PNG, matplotlib's non-interactive Agg backend so they render on headless machines)."""

from __future__ import annotations

from pathlib import Path

import librosa
import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # the backend must be chosen before pyplot is imported

N_MELS = 80
HOP_MS = 10.0


def spectrogram_comparison(panels: list[tuple[str, np.ndarray]], sample_rate: int, title: str, path: Path) -> None:
    """Log-mel spectrograms stacked on one shared dB scale and time axis, so differences are visible."""
    hop = int(sample_rate * HOP_MS / 1000)
    mels = [
        librosa.power_to_db(
            librosa.feature.melspectrogram(y=wav, sr=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=N_MELS),
            ref=1.0,
            top_db=None,
        )
        for _, wav in panels
    ]
    top = max(float(mel.max()) for mel in mels)
    frames = max(mel.shape[1] for mel in mels)
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 1.8 * len(panels)), sharex=True, squeeze=False)
    for axis, (label, _), mel in zip(axes[:, 0], panels, mels, strict=True):
        image = axis.imshow(
            mel,
            origin="lower",
            aspect="auto",
            vmin=top - 80,
            vmax=top,
            cmap="magma",
            extent=(0, mel.shape[1] * HOP_MS / 1000, 0, N_MELS),
        )
        axis.set_xlim(0, frames * HOP_MS / 1000)
        axis.set_ylabel(f"{label}\nmel bin", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(title, fontsize=10)
    figure.colorbar(image, ax=axes[:, 0].tolist(), label="dB", shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def bar_chart(labels: list[str], means: list[float], lows: list[float], highs: list[float], path: Path) -> None:
    """MOS per system with its 95% interval as error bars, on the fixed 1..5 scale."""
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 2, 3.5))
    positions = np.arange(len(labels))
    errors = np.array(
        [[m - lo for m, lo in zip(means, lows, strict=True)], [h - m for m, h in zip(means, highs, strict=True)]]
    )
    axis.bar(positions, means, color="#4c72b0", yerr=np.nan_to_num(errors), capsize=6)
    axis.set_xticks(positions, labels, rotation=20, ha="right")
    axis.set_ylim(1, 5)
    axis.set_ylabel("MOS (95% CI)")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
