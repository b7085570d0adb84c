"""`vocoder synthesize`: feature files to WAV files with a loaded model."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vocoder.cli.app import app
from vocoder.cli.common import DEFAULT_MODEL, output_paths
from vocoder.constants import TEMPERATURE_MAX, TEMPERATURE_MIN, TOP_K_MAX
from vocoder.errors import VocoderError
from vocoder.vocabulary import STRATEGIES

AUDIO_SUFFIX = {"pcm16": ".wav", "float": ".wav", "flac": ".flac"}


@app.command()
def synthesize(
    inputs: list[Path] = typer.Argument(..., help="feature files (.npz)"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory, or one audio file for one input"),
    model: str = typer.Option(DEFAULT_MODEL, help="bundled model name or model path"),
    method: str | None = typer.Option(
        None,
        help="fast (Fast WaveNet), fast-torch or naive for a teacher; student for a student (default: fast / student)",
    ),
    strategy: str | None = typer.Option(None, help=" | ".join(STRATEGIES) + f" (default: {STRATEGIES[0]})"),
    temperature: float | None = typer.Option(
        None,
        help=f"divides the logits before sampling ({TEMPERATURE_MIN:g} to {TEMPERATURE_MAX:g}; default: the "
        "model's, in its card)",
    ),
    voiced_temperature: float | None = typer.Option(
        None, help="in place of --temperature in the frames the features' vuv marks voiced (default: the model's)"
    ),
    top_k: int | None = typer.Option(
        None, help=f"sample among the k most likely classes (1 to {TOP_K_MAX:,}; default: the model's)"
    ),
    top_p: float | None = typer.Option(
        None, help="sample within the smallest set of mass >= p (1: no cut; default: the model's)"
    ),
    seed: int | None = typer.Option(None, help="makes sampling reproducible"),
    speaker: str | None = typer.Option(None, help="overrides the feature files' speaker"),
    batch_size: int = typer.Option(1, min=1, help="utterances generated together"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when available)"),
    precision: str = typer.Option("fp32", help="CPU kernel weights: fp32 (exact), fp16 or int8 (faster)"),
    backend: str = typer.Option(
        "auto",
        help="what runs fast (or student) synthesis: auto, cpu-kernel, torch, cuda-graph or triton (teacher only)",
    ),
    audio_format: str = typer.Option("pcm16", "--format", help=f"one of {sorted(AUDIO_SUFFIX)}"),
) -> None:
    """Generate waveforms from feature files, with a progress bar in samples per second."""
    from tqdm import tqdm

    import vocoder
    from vocoder.audio import AUDIO_FORMATS, save_wav

    if audio_format not in AUDIO_FORMATS:
        raise VocoderError(f"--format: expected one of {sorted(AUDIO_FORMATS)}, found {audio_format!r}")
    targets = output_paths(inputs, out, AUDIO_SUFFIX[audio_format])
    loaded = vocoder.load(model, device, precision, backend)  # type: ignore[arg-type]
    sampling = loaded.sampling(strategy, temperature, top_k, top_p, seed, voiced_temperature)  # type: ignore[arg-type]
    features = [loaded.features(path, speaker) for path in inputs]  # validate everything before generating
    ignored, reason = loaded.ignored_settings(sampling, features)
    if ignored:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in ignored)
        typer.secho(f"note: {loaded.name} ({loaded.kind}) ignores {flags}: {reason}", err=True)
    batches = [features[start : start + batch_size] for start in range(0, len(features), batch_size)]
    # A batch generates up to its longest utterance in every row: that is the work the bar counts.
    total = sum(max(item.n_samples for item in batch) * len(batch) for batch in batches)
    with tqdm(
        total=total, unit="sample", unit_scale=True, desc=f"{loaded.name}/{method or loaded.default_method}"
    ) as bar:
        for start, chunk in zip(range(0, len(features), batch_size), batches, strict=True):
            began = time.perf_counter()
            waveforms = loaded.synthesize_batch(
                chunk, method, sampling, progress=lambda n, size=len(chunk): bar.update(n * size)
            )
            elapsed = time.perf_counter() - began
            for item, wav, target in zip(chunk, waveforms, targets[start : start + batch_size], strict=True):
                save_wav(target, wav, loaded.sample_rate, audio_format)
                bar.write(f"{item.source} -> {target} ({len(wav) / loaded.sample_rate:.2f} s audio)")
            bar.write(f"batch of {len(chunk)}: {sum(map(len, waveforms)) / elapsed:,.0f} samples/s")
