"""Real Festival output for the label, front-end and corpus tests, made once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vocoder.config import Config, config_from_dict
from vocoder.corpus.demo import build_demo_corpus
from vocoder.features.linguistic import linguistic_dim
from vocoder.frontend.festival import FestivalUtterance, run_festival

SENTENCES = ("Hello world, this is a test.", "How many apples did you pick this morning?")


def linguistic_config(hop_length: int = 200, conditioning: tuple[str, ...] = ("linguistic", "lf0", "vuv")) -> Config:
    """A 16 kHz config conditioned on the project's question set."""
    return config_from_dict(
        {
            "name": "linguistic-test",
            "features": {
                "conditioning": list(conditioning),
                "hop_length": hop_length,
                "linguistic_dim": linguistic_dim(),
            },
            "model": {"upsample_scales": [hop_length]},
            "speakers": ["slt", "kal", "ked"],
        },
        "<linguistic test config>",
    )


@pytest.fixture(scope="session")
def sentences() -> tuple[str, ...]:
    return SENTENCES


@pytest.fixture(scope="session")
def make_linguistic_config() -> Callable[..., Config]:
    return linguistic_config


@pytest.fixture(scope="session")
def festival_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Festival's own files (NNNN.lab, .f0, .wav) for SENTENCES, per voice: <dir>/slt, <dir>/kal."""
    root = tmp_path_factory.mktemp("festival")
    for voice in ("slt", "kal"):
        run_festival(SENTENCES, voice, root / voice, wave=True)
    return root


@pytest.fixture(scope="session")
def festival_utterances(festival_dir: Path) -> dict[str, list[FestivalUtterance]]:
    return {voice: run_festival(SENTENCES, voice, festival_dir / f"{voice}-again") for voice in ("slt", "kal")}


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo corpus: two sentences read by slt and kal."""
    root = tmp_path_factory.mktemp("demo") / "corpus"
    build_demo_corpus(root, sentences=2, voices=("slt", "kal"), jobs=2, progress=False)
    return root
