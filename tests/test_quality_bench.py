"""`vocoder bench quality`: every system scored on the same held-out utterances, ratios to Griffin-Lim and to the
mu-law ceiling of the same run, WAVs and spectrogram grids written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vocoder
from tests.conftest import tiny_config
from tests.test_student_kernel import random_student
from tests.test_train import build_cache
from vocoder.audio import load_wav
from vocoder.bench.quality import (
    CEILING,
    GRIFFIN_LIM,
    QualitySettings,
    bench_quality,
    coloured,
    griffin_lim,
    held_out,
    model_features,
    mu_law_ceiling,
    score,
)
from vocoder.corpus.cache import FeatureCache
from vocoder.errors import VocoderError
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import read_features
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("source-a"), tiny_config(), count=4, seconds=1.0)


def test_held_out_ids_are_evenly_spread_and_stable(cache_dir: Path) -> None:
    assert held_out(cache_dir, "train", 2) == ["utt0", "utt2"]
    assert held_out(cache_dir, "train", 10) == ["utt0", "utt1", "utt2"]
    with pytest.raises(VocoderError, match="no 'test' utterances"):
        held_out(cache_dir, "test", 2)


def test_the_ceiling_is_the_recording_requantised() -> None:
    wav = np.linspace(-0.9, 0.9, 1000, dtype=np.float32)
    ceiling = mu_law_ceiling(wav, 255)
    assert np.max(np.abs(ceiling - wav)) < 0.9 * np.pi / 255 * 2  # within one mu-law bin of the loudest sample
    assert not np.array_equal(ceiling, wav)


@pytest.mark.slow
def test_bench_quality_scores_models_beside_griffin_lim_and_the_ceiling(cache_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = tiny_config(speakers=[])
    path = save_model(tmp_path / "random" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    model = vocoder.load(path, "cpu")
    settings = QualitySettings(split="train", limit=2, seed=0, griffin_lim_iterations=16, with_dnsmos=False)
    report = bench_quality([model], [cache_dir], tmp_path / "out", settings, progress=False)
    source = cache_dir.name
    assert report["utterances"] == {source: ["utt0", "utt2"]}
    systems = report["sources"][source]
    assert list(systems) == [CEILING, GRIFFIN_LIM, "random"]
    ceiling, griffin_lim, random_model = (systems[name]["mean"] for name in systems)
    assert ceiling["pesq_wb"] > griffin_lim["pesq_wb"] > random_model["pesq_wb"]  # an untrained model is noise
    assert ceiling["stoi"] > random_model["stoi"] and ceiling["mcd_db"] < random_model["mcd_db"]
    # The cache's audio is a harmonic tone: voiced throughout; an untrained model's noise is not.
    assert ceiling["voiced"] > 0.9 > 0.3 > random_model["voiced"] and ceiling["vuv_error"] < random_model["vuv_error"]
    ratio = systems["random"]["vs_griffin_lim"]
    assert ratio["pesq_wb"] == pytest.approx(random_model["pesq_wb"] / griffin_lim["pesq_wb"], abs=1e-3)
    assert ratio["mcd_db"] == pytest.approx(griffin_lim["mcd_db"] / random_model["mcd_db"], abs=1e-3)
    assert systems[GRIFFIN_LIM]["vs_griffin_lim"]["pesq_wb"] == 1.0
    assert json.dumps(report["sources"]["all"]) == json.dumps(systems)  # one source: the same means (NaN too)
    wavs = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out" / "wavs").rglob("*.wav"))
    assert len(wavs) == 2 * 3
    assert (tmp_path / "out" / "spectrograms" / f"{source}_utt0.png").is_file()
    json.dumps(report)  # the --json output


def test_bench_quality_scores_a_model_without_mel_beside_griffin_lim_from_the_recording(tmp_path: Path) -> None:
    """A model that reads no mel (as the TTS model reads linguistic features): Griffin-Lim inverts the recording's
    mel, computed with the model's STFT settings, so the run still has its baseline."""
    torch.manual_seed(0)
    config = tiny_config(speakers=[], features={"conditioning": ["lf0", "vuv"]})
    cache = build_cache(tmp_path / "f0-only", config, count=1, seconds=0.5)
    assert read_features(FeatureCache(cache).feature_path("utt0")).mel is None
    path = save_model(tmp_path / "f0" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    settings = QualitySettings(split="valid", limit=1, seed=0, griffin_lim_iterations=8, with_dnsmos=False)
    report = bench_quality([vocoder.load(path, "cpu")], [cache], tmp_path / "out", settings, progress=False)
    systems = report["sources"]["f0-only"]
    griffin_lim, random_model = systems[GRIFFIN_LIM]["mean"], systems["f0"]["mean"]
    assert griffin_lim["pesq_wb"] > random_model["pesq_wb"] and griffin_lim["mcd_db"] < random_model["mcd_db"] - 5
    assert griffin_lim["stoi"] > random_model["stoi"] + 0.2


def test_a_model_reading_f0_the_cache_lacks_is_scored_on_the_recordings(cache_dir: Path, tmp_path: Path) -> None:
    """A harmonic-source student on a mel-only cache (as `--config real_teacher` builds them): it is given the
    recording's F0, measured as `vocoder extract --model` measures it; a mel-only model, or a file with F0, is read
    as it is."""
    student = random_student(source_harmonics=3)
    path = save_model(tmp_path / "sine" / "model.safetensors", student, student.config, "student", {"steps": 0})
    sine = vocoder.load(path, "cpu")
    cache = FeatureCache(cache_dir)
    features, reference = read_features(cache.feature_path("utt0")), load_wav(cache.audio_path("utt0"), 16000)
    assert features.lf0 is None and features.vuv is None
    given = model_features(sine, features, reference)
    measured = extract_features(reference, sine.config)
    assert np.array_equal(given.lf0, measured.lf0) and np.array_equal(given.vuv, measured.vuv)
    assert given.mel is features.mel and given.vuv.mean() > 0.9  # the cache's harmonic tone: voiced
    assert model_features(sine, given, reference) is given
    teacher = save_model(tmp_path / "mel" / "model.safetensors", WaveNet(tiny_config()), tiny_config(), "teacher", {})
    assert model_features(vocoder.load(teacher, "cpu"), features, reference) is features
    settings = QualitySettings(split="train", limit=1, seed=0, griffin_lim_iterations=4, with_dnsmos=False)
    bench_quality([sine], [cache_dir], tmp_path / "out", settings, progress=False)
    written = load_wav(tmp_path / "out" / "wavs" / cache_dir.name / "sine" / "utt0.wav", 16000)
    assert np.allclose(written, np.clip(sine.synthesize(given, seed=0), -1, 1), atol=1 / 32767)


def speakerless_teacher(folder: Path) -> vocoder.Vocoder:
    """A random tiny teacher without speakers (the caches' speakers are not its), saved in `folder` and loaded."""
    torch.manual_seed(0)
    config = tiny_config(speakers=[])
    path = save_model(folder / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    return vocoder.load(path, "cpu")


def test_a_model_past_full_scale_is_scored_as_written(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A de-emphasised output can pass full scale; the CLI and the service write it clipped, so it is scored so."""
    model = speakerless_teacher(tmp_path / "loud")
    synthesize_batch = model.synthesize_batch
    monkeypatch.setattr(model, "synthesize_batch", lambda *a, **k: [8 * wav for wav in synthesize_batch(*a, **k)])
    settings = QualitySettings(split="train", limit=1, seed=0, griffin_lim_iterations=4, with_dnsmos=False)
    report = bench_quality([model], [cache_dir], tmp_path / "out", settings, progress=False)
    cache = FeatureCache(cache_dir)
    reference = load_wav(cache.audio_path("utt0"), 16000)
    loud = 8 * synthesize_batch([read_features(cache.feature_path("utt0"))], sampling=model.sampling(seed=0))[0]
    assert np.abs(loud).max() > 1.5
    scored = report["sources"][cache_dir.name]["loud"]["mean"]
    as_written, unclipped = (score(reference, wav, 16000, False) for wav in (np.clip(loud, -1, 1), loud))
    assert scored["mcd_db"] == pytest.approx(as_written["mcd_db"], abs=1e-3)  # the report's 3 decimals
    assert abs(as_written["mcd_db"] - unclipped["mcd_db"]) > 0.01  # 10 times the rounding
    assert scored["stoi"] == pytest.approx(as_written["stoi"], abs=1e-3)


def test_griffin_lim_repeats_with_its_seed(cache_dir: Path) -> None:
    """The baseline of every quality run is reproducible: Griffin-Lim's random initial phases follow the seed."""
    mel = read_features(FeatureCache(cache_dir).feature_path("utt0")).mel
    first, again, other = (griffin_lim(mel, tiny_config(), 4, 4000, seed) for seed in (0, 0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_bench_quality_refuses_what_it_cannot_score(cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(VocoderError, match="at least one --model"):
        bench_quality([], [cache_dir], tmp_path, QualitySettings())


@pytest.mark.slow
def test_bench_quality_runs_each_model_at_its_sampling(cache_dir: Path, tmp_path: Path) -> None:
    """A model at its default sampling, and the same model at another given with `@` on the command line."""
    from tests.test_cli import run

    torch.manual_seed(0)
    config = tiny_config(speakers=[], sampling={"temperature": 0.7})
    path = save_model(tmp_path / "cool" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    out = tmp_path / "out"
    args = ["bench", "quality", "--data", str(cache_dir), "--split", "train", "--limit", "1", "--no-dnsmos"]
    result = run(*args, "--model", str(path), "--model", f"hot={path}@temperature=1.0,top_k=9", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "quality.json").read_text())
    assert report["sampling"] == {"cool": "sample, temperature 0.7", "hot": "sample, top_k 9"}
    assert "sampling: cool: sample, temperature 0.7; hot: sample, top_k 9" in result.stdout
    source = cache_dir.name
    expected = vocoder.load(path, "cpu").synthesize(read_features(FeatureCache(cache_dir).feature_path("utt0")), seed=0)
    written = load_wav(out / "wavs" / source / "cool" / "utt0.wav", 16000)
    assert np.allclose(written, expected, atol=1 / 32767)  # 16-bit WAV of the default-sampled synthesis
    bad = run(*args, "--model", f"{path}@warmth=2", "--out", str(out))
    assert bad.returncode == 2 and "--model " in bad.stderr and "found 'warmth=2'" in bad.stderr


def bench_altered(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **alteration: float
) -> tuple[vocoder.Vocoder, dict, list]:
    """A one-utterance quality run of a random teacher on recordings altered by `alteration` (QualitySettings'
    gain_db or tilt): the model, the run's report, and the features the model was given."""
    model = speakerless_teacher(tmp_path / "altered")
    seen: list = []
    synthesize_batch = model.synthesize_batch
    monkeypatch.setattr(
        model, "synthesize_batch", lambda features, **k: seen.extend(features) or synthesize_batch(features, **k)
    )
    settings = QualitySettings(split="train", limit=1, seed=0, griffin_lim_iterations=4, with_dnsmos=False)
    report = bench_quality([model], [cache_dir], tmp_path / "out", replace(settings, **alteration), progress=False)
    return model, report, seen


def test_a_gain_scales_every_recording_and_moves_its_mel_before_copy_synthesis(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--gain-db`: how each system meets a quieter recording, every system scored against the scaled one."""
    model, report, seen = bench_altered(cache_dir, tmp_path, monkeypatch, gain_db=-20)
    assert report["settings"]["gain_db"] == -20
    cache = FeatureCache(cache_dir)
    given = read_features(cache.feature_path("utt0"))
    unclipped = given.mel > np.log(model.config.features.log_floor) + np.log(10)
    assert np.allclose(seen[0].mel[unclipped], given.mel[unclipped] - np.log(10), atol=1e-5)
    written = load_wav(tmp_path / "out" / "wavs" / cache_dir.name / CEILING / "utt0.wav", 16000)
    recording = load_wav(cache.audio_path("utt0"), 16000)
    assert np.abs(written).max() == pytest.approx(0.1 * np.abs(recording).max(), rel=0.05)


def high_to_low(wav: np.ndarray) -> float:
    """Energy above 4 kHz over energy below it, at 16 kHz."""
    power = np.abs(np.fft.rfft(wav)) ** 2
    return float(power[len(power) // 2 :].sum() / power[: len(power) // 2].sum())


def test_a_tilt_colours_every_recording_and_its_features_are_extracted_again(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--tilt`: how each system meets another microphone, every system scored against the coloured recording."""
    model, report, seen = bench_altered(cache_dir, tmp_path, monkeypatch, tilt=0.5)
    assert report["settings"]["tilt"] == 0.5
    cache = FeatureCache(cache_dir)
    recording = load_wav(cache.audio_path("utt0"), 16000)
    brighter = coloured(recording, 0.5)
    assert np.abs(brighter).max() == pytest.approx(np.abs(recording).max(), rel=1e-5)
    assert high_to_low(brighter) > 2 * high_to_low(recording)
    expected = extract_features(brighter, model.config)
    assert np.allclose(seen[0].mel, expected.mel, atol=1e-5)
    assert not np.allclose(seen[0].mel, read_features(cache.feature_path("utt0")).mel, atol=1e-2)
    written = load_wav(tmp_path / "out" / "wavs" / cache_dir.name / CEILING / "utt0.wav", 16000)
    assert np.corrcoef(written, brighter)[0, 1] > 0.99
    with pytest.raises(VocoderError, match="strictly between -1 and 1"):
        coloured(recording, 1.0)
