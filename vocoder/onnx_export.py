"""ONNX export of a Parallel WaveNet student, so a deployment without PyTorch can run it through onnxruntime.

Two graphs, every length and the batch dynamic:
- `upsampler.onnx`: frame-rate conditioning `frames [B, N, C]` (the feature file's arrays concatenated, as
  `Features.conditioning` does) -> sample-rate `local [B, C', N * hop]`. A student with a harmonic source
  (`student.source_harmonics` H) also takes the frame F0 `f0 [B, N]` in Hz, 0 where unvoiced (`Features.f0_hz`:
  `exp(lf0) * vuv`), and its `local [B, C' + H + 1, N * hop]` ends with the source, as `with_source` computes it
  (phase 0 at the utterance's start, summed and wrapped in float64 inside the graph);
- `student.onnx`: the whole one-pass synthesis, `StudentWaveNet.generate`: `local`, `uniforms [B, N * hop]` (the
  noise as uniform draws in (0, 1)), `temperatures [B, N * hop]` (each sample's noise scale: the student's sampling
  is part of what it sounds like, so a caller draws as `Vocoder.synthesize` does) and, for a model with speakers,
  `speaker_ids [B]` -> `waveform [B, N * hop]` in [-1, 1], in the model's signal domain: when
  `audio.preemphasis` is set, the caller de-emphasises (`y[t] = x[t] + a * y[t-1]`), as `Vocoder.synthesize` does.
`export.json` beside them says which is which and holds what a caller needs (rate, hop, arrays, speakers,
pre-emphasis, the model's default temperatures; for a source student, the feature file's fields `f0` comes from).
A teacher generates sample by sample, each step fed its own previous sample: that loop has no one-graph form here,
and exporting one is refused with the reason.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from vocoder.api import Vocoder
from vocoder.atomic import atomic_path
from vocoder.errors import VocoderError
from vocoder.models.student import StudentWaveNet
from vocoder.vocabulary import F0_ARRAYS, STUDENT

STUDENT_FILE = "student.onnx"
UPSAMPLER_FILE = "upsampler.onnx"
MANIFEST_FILE = "export.json"
EXAMPLE_FRAMES = 7
EXAMPLE_BATCH = 2  # not 1: the exporter would take a batch of 1 for a constant
EXAMPLE_F0 = 150.0  # Hz: the example frames' F0 for a source student's upsampler (the graph has no branch on it)


class _Synthesis(nn.Module):
    def __init__(self, model: StudentWaveNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        local: torch.Tensor,
        uniforms: torch.Tensor,
        temperatures: torch.Tensor,
        speaker_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.model.generate(local, speaker_ids, uniforms, temperatures)


class _Upsampler(nn.Module):
    """The flows' whole conditioning from frames (and a source student's frame F0): `with_source`, traced."""

    def __init__(self, model: StudentWaveNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, f0: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.with_source(self.model.upsample(frames), f0, None)


def export_student(vocoder: Vocoder, out: Path) -> dict[str, object]:
    """Write `upsampler.onnx`, `student.onnx` and `export.json` of a student into `out`; returns the manifest."""
    if vocoder.kind != STUDENT:
        raise VocoderError(
            f"--model {vocoder.name}: a {vocoder.kind} cannot be exported to ONNX: its generation is a loop of one "
            "step per sample fed with its own output, with no one-graph form; export a student (vocoder distill)"
        )
    model = vocoder.model
    assert isinstance(model, StudentWaveNet)
    config = model.config
    model = copy.deepcopy(model).float().cpu().eval()  # exported on CPU in float32, the caller's model untouched
    out.mkdir(parents=True, exist_ok=True)
    upsampler = _Upsampler(model)
    frames = torch.randn(EXAMPLE_BATCH, EXAMPLE_FRAMES, config.features.dim)
    samples = EXAMPLE_FRAMES * config.features.hop_length
    batch = torch.export.Dim("batch", min=1)
    frame_axis = torch.export.Dim("frames", min=1)
    sample_axis = torch.export.Dim("samples", min=2)
    upsampler_inputs = {"frames": frames}
    if model.source_channels:
        upsampler_inputs["f0"] = torch.full((EXAMPLE_BATCH, EXAMPLE_FRAMES), EXAMPLE_F0)
    with torch.no_grad():
        local = upsampler(*upsampler_inputs.values())
    inputs: dict[str, torch.Tensor] = {
        "local": local,
        "uniforms": torch.rand(EXAMPLE_BATCH, samples),
        "temperatures": torch.rand(EXAMPLE_BATCH, samples),
    }
    shapes: dict[str, dict[int, torch.export.Dim]] = {
        "local": {0: batch, 2: sample_axis},
        "uniforms": {0: batch, 1: sample_axis},
        "temperatures": {0: batch, 1: sample_axis},
    }
    if config.speakers:
        inputs["speaker_ids"] = torch.zeros(EXAMPLE_BATCH, dtype=torch.long)
        shapes["speaker_ids"] = {0: batch}
    with warnings.catch_warnings():  # the exporter's own progress and deprecation notes
        warnings.simplefilter("ignore")
        upsampler_shapes = {name: {0: batch, 1: frame_axis} for name in upsampler_inputs}
        _export(upsampler, tuple(upsampler_inputs.values()), upsampler_shapes, ["local"], out / UPSAMPLER_FILE)
        _export(_Synthesis(model), tuple(inputs.values()), shapes, ["waveform"], out / STUDENT_FILE)
    manifest: dict[str, object] = {
        "model": vocoder.name,
        "kind": vocoder.kind,
        "sample_rate": config.audio.sample_rate,
        "hop_length": config.features.hop_length,
        "conditioning": config.features.array_dims(),
        "speakers": list(config.speakers),
        "preemphasis": config.audio.preemphasis,
        "temperatures": {  # the input `temperatures`, per sample, as the model draws by default
            "temperature": config.sampling.temperature,
            "voiced_temperature": config.sampling.voiced_temperature,
            "rule": "voiced_temperature where the sample's frame has vuv 1 (when it is not null), else temperature",
        },
        "upsampler": {"file": UPSAMPLER_FILE, "inputs": list(upsampler_inputs), "outputs": ["local"]},
        "student": {"file": STUDENT_FILE, "inputs": list(inputs), "outputs": ["waveform"]},
    }
    if model.source_channels:
        manifest["f0"] = {  # the upsampler's input `f0`: Features.f0_hz of the feature file's arrays `fields`
            "fields": list(F0_ARRAYS),
            "hz": "exp(lf0) * vuv",
            "dtype": "float32",
            "shape": ["batch", "frames"],
        }
        manifest["source_harmonics"] = config.student.source_harmonics
    if vocoder.input_levels is not None:  # the caller keeps an utterance in the band, as Vocoder.synthesize does
        manifest["input_levels_db"] = {
            **dataclasses.asdict(vocoder.input_levels),
            "rule": "level = 10 log10 of the 95th percentile over frames of sum(exp(2 * mel)); outside [low, high]: "
            "g = 10 ** ((middle - level) / 20), mel + ln g (floored as extracted), waveform / g",
        }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    shapes: dict[str, dict[int, torch.export.Dim]],
    outputs: list[str],
    path: Path,
) -> None:
    """One graph through torch's exporter (torch.export), written whole or not at all."""
    try:
        program = torch.onnx.export(
            module,
            args,
            dynamic_shapes=shapes,
            input_names=list(shapes),
            output_names=outputs,
            dynamo=True,
            verbose=False,
        )
        assert program is not None
        with atomic_path(path) as partial:
            program.save(str(partial))
    except ImportError as error:
        raise VocoderError(f"ONNX export needs the packages onnx and onnxscript ({error})") from None


class OnnxStudent:
    """An exported student run by onnxruntime, with `TorchStudent`'s interface (for benchmarks and tests)."""

    name = "onnx"

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._upsampler = onnxruntime.InferenceSession(str(folder / UPSAMPLER_FILE), options)
        self._student = onnxruntime.InferenceSession(str(folder / STUDENT_FILE), options)
        self.reads_f0 = "f0" in [graph_input.name for graph_input in self._upsampler.get_inputs()]

    def upsample(self, frames: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """`[B, frames, C]` and, for a student with a harmonic source, its frame F0 `[B, frames]` in Hz (None
        without one) -> the flows' conditioning `[B, C' (+ H + 1), frames * hop]`."""
        feeds = {"frames": frames.cpu().numpy()}
        if self.reads_f0 != (f0 is not None):
            expected = "frame F0 [batch, frames] in Hz" if self.reads_f0 else "None: it has no harmonic source"
            found = "None" if f0 is None else f"shape {list(f0.shape)}"
            raise VocoderError(f"f0: this export's upsampler expects {expected}, found {found}")
        if f0 is not None:
            feeds["f0"] = f0.cpu().float().numpy()
        [local] = self._upsampler.run(None, feeds)
        return torch.from_numpy(local)

    def generate(
        self,
        local: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        uniforms: torch.Tensor,
        temperature: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """A waveform `[B, T]` in [-1, 1] from `local [B, C', T]` and `uniforms [B, T]`, the noise scaled by
        `temperature` (a number or `[B, T]`, as `StudentWaveNet.generate` takes it)."""
        temperatures = torch.as_tensor(temperature, dtype=torch.float32)
        if temperatures.dim() and temperatures.shape != uniforms.shape:
            raise VocoderError(
                f"temperature: expected a number or one per sample, shape {list(uniforms.shape)} like the uniforms, "
                f"found shape {list(temperatures.shape)}"
            )
        temperatures = temperatures.expand(uniforms.shape)
        feeds = {
            "local": local.cpu().numpy(),
            "uniforms": uniforms.cpu().float().numpy(),
            "temperatures": temperatures.cpu().numpy(),
        }
        if speaker_ids is not None:
            feeds["speaker_ids"] = speaker_ids.cpu().numpy()
        [waveform] = self._student.run(None, feeds)
        return torch.from_numpy(waveform)
