"""Bundling a trained model under `models/<name>/`: the model file, its config as YAML, and a model card.

The card is generated from what the model file itself records (steps, wall time, device, validation loss), the
feature cache it was trained on, and optionally an evaluation summary, so it cannot drift from the weights.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vocoder.atomic import atomic_path
from vocoder.config import Config, config_from_dict
from vocoder.errors import VocoderError
from vocoder.features.level import METADATA_KEY, InputLevels
from vocoder.models.checkpoint import WEIGHTS_NAME, read_model_header, replace_header, resolve_model_path
from vocoder.models.student import StudentWaveNet
from vocoder.models.wavenet import WaveNet
from vocoder.train.checkpoints import read_checkpoint, save_checkpoint
from vocoder.train.data import TrainingCorpus
from vocoder.vocabulary import STUDENT, STUDENT_SETTINGS, TEACHER

MAX_BUNDLE_BYTES = 20 * 1024 * 1024
TRAINING_STATE = "training/state.pt"
LOSS_MEANING = {
    TEACHER: "cross-entropy, nats per sample",
    STUDENT: "distillation loss: KL(student || teacher) in nats per sample, less the weighted contrastive KL if "
    "any, plus the weighted spectral losses",
}


def _cache_summary(feature_dir: Path) -> str:
    if not (feature_dir / "manifest.jsonl").is_file():
        return f"{feature_dir.name}: not recorded"
    rows = [json.loads(line) for line in (feature_dir / "manifest.jsonl").read_text().splitlines() if line]
    train = [row for row in rows if row["split"] == "train"]
    speakers = sorted({row["speaker"] for row in rows})
    shown = ", ".join(speakers[:6]) + (f" and {len(speakers) - 6} more" if len(speakers) > 6 else "")
    minutes = sum(row["duration"] for row in train) / 60
    utterances = f"{len(train)} training utterances ({minutes:.1f} min) of {len(rows)}"
    return f"`{feature_dir.name}`: {utterances}, speakers {shown}"


def _corpus_summary(feature_dirs: list[Path]) -> str:
    return "; ".join(_cache_summary(directory) for directory in feature_dirs) or "not recorded"


def _file_name(identity: dict[str, str]) -> str:
    """A recorded model file as `<folder>/<file>`: a card names no path of the machine that built it."""
    return "/".join(Path(identity["file"]).parts[-2:])


def write_card(
    path: Path, name: str, model_file: Path, feature_dirs: list[Path], evaluation: Path | None, notes: str
) -> None:
    config, kind, metadata = read_model_header(model_file)
    lines = [
        f"# `{name}`: {kind} ({config.name})",
        "",
        notes.strip(),
        "",
        "| | |",
        "|---|---|",
        f"| kind | {kind} |",
        f"| config | `{config.name}` (embedded in the model file; `config.yaml` beside it) |",
        f"| conditioning | {', '.join(config.features.conditioning)} ({config.features.dim} dims per frame, "
        f"hop {config.features.hop_length}) |",
        f"| speakers | {', '.join(config.speakers) or 'none (speaker-independent)'} |",
        f"| sample rate | {config.audio.sample_rate} Hz, {config.audio.classes}-class mu-law |",
    ]
    if kind == TEACHER:
        model = WaveNet(config)
        lines += [
            f"| layers | {config.model.layers} in {config.model.cycles} cycles, kernel {config.model.kernel_size}, "
            f"{config.model.residual_channels}/{config.model.gate_channels}/{config.model.skip_channels} "
            "residual/gate/skip channels |",
            f"| receptive field | {model.receptive_field} samples ({model.receptive_field_ms:.0f} ms) |",
            f"| parameters | {model.parameter_count():,} |",
        ]
        if config.model.lpc_order:
            lines.append(
                f"| linear prediction | order {config.model.lpc_order} from the mel; the network models the mu-law "
                "excitation |"
            )
        shaped = [f"{key} {value}" for key, value in config.sampling.model_dump().items() if value is not None]
        lines.append(f"| default sampling | {', '.join(shaped)} (a request's own settings replace it) |")
    elif kind == STUDENT and config.student is not None:
        student = StudentWaveNet(config)
        lines += [
            f"| flows | {len(config.student.flows)} flows of {config.student.flows} layers, "
            f"{config.student.residual_channels}/{config.student.gate_channels}/{config.student.skip_channels} "
            "residual/gate/skip channels |",
            f"| receptive field | {student.receptive_field} samples of noise |",
            f"| parameters | {student.parameter_count():,} |",
        ]
        scales = [f"{key} {value}" for key in STUDENT_SETTINGS if (value := getattr(config.sampling, key)) is not None]
        lines.append(f"| default sampling | {', '.join(scales)}: the noise's scale (a request's own replace it) |")
        if config.reads_f0:
            lines.append(
                f"| harmonic source | {config.student.source_harmonics} harmonics of the recording's F0 and its "
                f"voicing beside the conditioning: its feature files hold {', '.join(config.feature_arrays())} "
                f"(`vocoder extract --model {name}` writes them) |"
            )
        if teacher := metadata.get("teacher"):
            lines.append(f"| distilled from | `{_file_name(teacher)}` (sha256 {teacher['sha256'][:12]}) |")
        if config.model.lpc_order:
            lines.append(
                f"| linear prediction | the teacher's (order {config.model.lpc_order}): it was distilled against the "
                "teacher's excitation density; the student outputs the signal, with no prediction at synthesis |"
            )
    if initial := metadata.get("initialised_from"):
        lines.append(f"| fine-tuned from | `{_file_name(initial)}` (sha256 {initial['sha256'][:12]}) |")
    lines += [
        f"| training data | {_corpus_summary(feature_dirs)} |",
        f"| steps | {metadata.get('steps', 'n/a')} |",
        f"| wall time | {metadata.get('wall_seconds', 'n/a')} s |",
        f"| device | {metadata.get('device', 'n/a')} |",
        f"| validation loss | {metadata.get('valid_loss', 'n/a')} ({LOSS_MEANING.get(kind, 'see the config')}) |",
        f"| bundled | {datetime.now(UTC).strftime('%Y-%m-%d')} |",
    ]
    if levels := InputLevels.from_metadata(metadata):
        lines.append(
            f"| input levels | trained on mel levels {levels.low:.1f} to {levels.high:.1f} dB "
            f"(`vocoder.features.level`): an utterance outside them is conditioned at {levels.middle:.1f} dB, "
            "its output scaled back |"
        )
    if (path.parent / TRAINING_STATE).is_file():
        command = "vocoder distill" if kind == STUDENT else "vocoder train"
        lines.append(f"| training state | `{TRAINING_STATE}`: continue with `{command} --resume-from` |")
    if evaluation is not None and evaluation.is_file():
        lines += ["", "## Objective evaluation", "", evaluation.read_text().strip()]
    path.write_text("\n".join(lines) + "\n")


def _missing_input_levels(metadata: dict[str, Any], config: Config, feature_dirs: list[Path]) -> InputLevels | None:
    """For a model file written before models recorded the band of input levels they were trained on (its
    `metadata` lacks one): the band of its training data (`feature_dirs`, as training reads them), so the bundled
    copy keeps to it at synthesis."""
    if not feature_dirs or METADATA_KEY in metadata or "mel" not in config.features.conditioning:
        return None
    return TrainingCorpus(feature_dirs, config, "train").input_levels()


def bundle_model(
    source: str | Path,
    name: str,
    models_dir: Path,
    feature_dirs: list[Path] | None = None,
    evaluation: Path | None = None,
    notes: str = "",
    training_state: Path | None = None,
    sampling: dict[str, object] | None = None,
) -> Path:
    """Copy a model file into `models_dir/name/` with `config.yaml` and a generated `README.md` card, and the run's
    training state (a checkpoint, verified first) as `training/state.pt` so the next run continues it. `sampling`
    (e.g. `{"temperature": 0.8}`) replaces settings of the bundled copy's default sampling (its weights untouched)."""
    model_file = resolve_model_path(source)
    if model_file.stat().st_size > MAX_BUNDLE_BYTES:
        raise VocoderError(f"{model_file}: {model_file.stat().st_size / 2**20:.1f} MB exceeds the 20 MB bundle limit")
    config, kind, metadata = read_model_header(model_file)
    if sampling:
        if kind != TEACHER and (unread := sorted(set(sampling) - set(STUDENT_SETTINGS))):
            raise VocoderError(
                f"--sampling: {model_file} is a {kind}, which has no distribution to reshape: it reads only "
                f"{' and '.join(STUDENT_SETTINGS)} (its noise's scale), not {', '.join(unread)}"
            )
        changed = {**config.model_dump(mode="json"), "sampling": {**config.sampling.model_dump(), **sampling}}
        config = config_from_dict(changed, f"{model_file} with --sampling {sampling}")  # range errors name the key
    state = None if training_state is None else read_checkpoint(training_state)  # damaged: refused before copying
    if state is not None:
        # Both read through today's Config, so a state saved before a config field was added still matches; the
        # default sampling does not change the weights, so it may differ.
        saved = config_from_dict(state["config"], f"{training_state} (checkpoint config)")
        if saved.model_dump(exclude={"sampling"}) != config.model_dump(exclude={"sampling"}):
            raise VocoderError(f"{training_state}: its config differs from {model_file}'s: not the same run")
    target = models_dir / name
    target.mkdir(parents=True, exist_ok=True)
    if state is not None:
        save_checkpoint(state, target / TRAINING_STATE)  # written afresh: it carries its digest whatever its age
    levels = _missing_input_levels(metadata, config, feature_dirs or [])  # read before anything is written
    with atomic_path(target / WEIGHTS_NAME) as temporary:
        shutil.copyfile(model_file, temporary)
        if sampling or levels:
            recorded = None if levels is None else {**metadata, **levels.to_metadata()}
            replace_header(temporary, config if sampling else None, recorded)
    (target / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    write_card(target / "README.md", name, target / WEIGHTS_NAME, feature_dirs or [], evaluation, notes)
    return target
