"""Issue #17 probe: score students with and without a harmonic source on held-out real speech.

Every system synthesizes through the PyTorch forward (a student with a source cannot go through `vocoder.load` yet):
the feature file's conditioning, upsampled; for a source, the F0 WORLD measures on the held-out recording with the
config's settings (as `vocoder extract` would); seed 0's uniforms (`Sampling(seed=0)`, as `vocoder bench quality`
draws them). Scores: `vocoder.bench.quality.score` per utterance, means per source and over all utterances. First
checks that `--init` growing the bundled student into arm A's shape leaves its output unchanged.

    python probes/sine/evaluate.py OUT NAME=MODEL_PATH[,unvoiced] ...

MODEL_PATH: a model (name, folder or file) or a run's checkpoint (`.pt`, its EMA weights: what the run exports;
for a learning curve). `,unvoiced`: a diagnostic of a student with a source, given F0 0 everywhere (sines and vuv
at 0): what it makes without the source's periodic part.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from vocoder.audio import deemphasize, load_wav, save_wav
from vocoder.bench.quality import _means, held_out, score
from vocoder.config import config_from_dict, load_config
from vocoder.corpus.cache import FeatureCache
from vocoder.eval.plots import spectrogram_comparison
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import read_features
from vocoder.generate import Sampling
from vocoder.models.checkpoint import build_model, read_model_file, read_model_header, resolve_model_path
from vocoder.models.student import StudentWaveNet
from vocoder.train.checkpoints import read_checkpoint
from vocoder.train.distill import DistillTrainer

SOURCES = ["festvox-ru", "asterisk-en", "ktuberling"]
FEATS = Path("/work/main/data/real/feats")
PER_SOURCE = 4


def load_student(name_or_path: str) -> StudentWaveNet:
    if name_or_path.endswith(".pt"):
        state = read_checkpoint(Path(name_or_path))
        student = StudentWaveNet(config_from_dict(state["config"], name_or_path))
        student.load_state_dict(state["ema"])
        return student.eval()
    path = resolve_model_path(name_or_path)
    config, _, _ = read_model_header(path)
    model = build_model(path, config, StudentWaveNet)
    assert isinstance(model, StudentWaveNet)
    return model.eval()


@torch.inference_mode()
def synthesize(model: StudentWaveNet, frames: np.ndarray, recording: np.ndarray, unvoiced: bool = False) -> np.ndarray:
    config = model.config
    local = model.upsample(torch.from_numpy(frames)[None])
    f0 = torch.from_numpy(extract_features(recording, config).f0_hz())[None] if model.source_channels else None
    if f0 is not None and unvoiced:
        f0 = torch.zeros_like(f0)
    uniforms = Sampling(seed=0).uniforms(1, local.shape[-1])
    wav = model.generate(model.with_source(local, f0, None), None, uniforms)[0].numpy()
    return deemphasize(wav, config.audio.preemphasis)


@torch.inference_mode()
def check_init(bundled: str, arm_config: str, frames: np.ndarray, recording: np.ndarray) -> float:
    """max |difference| between the bundled student and it grown into `arm_config` (source columns at zero)."""
    grown = StudentWaveNet(load_config(arm_config)).eval()
    weights, _, _, _ = read_model_file(resolve_model_path(bundled))
    DistillTrainer.load_initial_weights(SimpleNamespace(model=grown), weights, Path(bundled))
    return float(
        np.abs(synthesize(grown, frames, recording) - synthesize(load_student(bundled), frames, recording)).max()
    )


def main(out: Path, systems: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    models = {name: load_student(path.removesuffix(",unvoiced")) for name, path in systems.items()}
    unvoiced = {name for name, path in systems.items() if path.endswith(",unvoiced")}
    report: dict[str, object] = {"systems": systems, "per_source": {}}
    everything: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for source in SOURCES:
        cache = FeatureCache(FEATS / source)
        ids = held_out(FEATS / source, "test", PER_SOURCE)
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        for index, utterance in enumerate(ids):
            recording = load_wav(cache.audio_path(utterance), 16000)
            config = next(iter(models.values())).config
            frames = read_features(cache.feature_path(utterance)).conditioning(config)
            if source == SOURCES[0] and index == 0:
                report["init_max_abs_difference"] = check_init("student", "probes/sine/arm_a.yaml", frames, recording)
                print("init check: max |grown - bundled| =", report["init_max_abs_difference"], flush=True)
            panels = [("recording", recording)]
            for name, model in models.items():
                wav = synthesize(model, frames, recording, name in unvoiced)
                rows[name].append(score(recording, wav, 16000, True))
                if index == 0:
                    save_wav(out / f"{source}_{utterance}_{name}.wav", wav, 16000)
                    panels.append((name, wav))
            if index == 0:
                save_wav(out / f"{source}_{utterance}_recording.wav", recording, 16000)
                spectrogram_comparison(panels, 16000, f"{source} {utterance}", out / f"{source}_{utterance}.png")
        report["per_source"][source] = {name: _means(rows[name]) for name in models}  # type: ignore[index]
        for name in models:
            everything[name] += rows[name]
            print(source, name, {k: round(v, 3) for k, v in _means(rows[name]).items()}, flush=True)
    report["mean"] = {name: _means(rows) for name, rows in everything.items()}
    for name in models:
        print("mean", name, {k: round(v, 3) for k, v in report["mean"][name].items()}, flush=True)  # type: ignore[index]
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), dict(argument.split("=", 1) for argument in sys.argv[2:]))
