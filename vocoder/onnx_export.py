"""ONNX export of a Parallel WaveNet student, so a deployment without PyTorch can run it through onnxruntime.

Two graphs, every length and the batch dynamic:
- `upsampler.onnx`: frame-rate conditioning `frames [B, N, C]` (the feature file's arrays concatenated, as
  `Features.conditioning` does) -> sample-rate `local [B, C', N * hop]`;
- `student.onnx`: the whole one-pass synthesis, `StudentWaveNet.generate`: `local`, `uniforms [B, N * hop]` (the
  noise as uniform draws in (0, 1)) and, for a model with speakers, `speaker_ids [B]` -> `waveform [B, N * hop]`
  in [-1, 1], in the model's signal domain: when `audio.preemphasis` is set, the caller de-emphasises
  (`y[t] = x[t] + a * y[t-1]`), as `Vocoder.synthesize` does.
`export.json` beside them says which is which and holds what a caller needs (rate, hop, arrays, speakers,
pre-emphasis). A teacher generates sample by sample, each step fed its own previous sample: that loop has no
one-graph form here, and exporting one is refused with the reason.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from vocoder.api import Vocoder
from vocoder.errors import VocoderError
from vocoder.models.student import StudentWaveNet
from vocoder.vocabulary import STUDENT

STUDENT_FILE = "student.onnx"
UPSAMPLER_FILE = "upsampler.onnx"
MANIFEST_FILE = "export.json"
EXAMPLE_FRAMES = 7
EXAMPLE_BATCH = 2  # not 1: the exporter would take a batch of 1 for a constant


class _Synthesis(nn.Module):
    def __init__(self, model: StudentWaveNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, local: torch.Tensor, uniforms: torch.Tensor, speaker_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.model.generate(local, speaker_ids, uniforms)


class _Upsampler(nn.Module):
    def __init__(self, model: StudentWaveNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.upsample(frames)


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
    if model.source_channels:
        raise VocoderError(
            f"--model {vocoder.name}: a student with a harmonic source (student.source_harmonics "
            f"{config.student.source_harmonics}) has no ONNX export yet: its graphs would need the source from F0; "
            "synthesize it with `vocoder synthesize` or the service"
        )
    model = copy.deepcopy(model).float().cpu().eval()  # exported on CPU in float32, the caller's model untouched
    out.mkdir(parents=True, exist_ok=True)
    frames = torch.randn(EXAMPLE_BATCH, EXAMPLE_FRAMES, config.features.dim)
    samples = EXAMPLE_FRAMES * config.features.hop_length
    batch = torch.export.Dim("batch", min=1)
    frame_axis = torch.export.Dim("frames", min=1)
    sample_axis = torch.export.Dim("samples", min=2)
    with torch.no_grad():
        local = model.upsample(frames)
    inputs: dict[str, torch.Tensor] = {"local": local, "uniforms": torch.rand(EXAMPLE_BATCH, samples)}
    shapes: dict[str, dict[int, torch.export.Dim]] = {
        "local": {0: batch, 2: sample_axis},
        "uniforms": {0: batch, 1: sample_axis},
    }
    if config.speakers:
        inputs["speaker_ids"] = torch.zeros(EXAMPLE_BATCH, dtype=torch.long)
        shapes["speaker_ids"] = {0: batch}
    with warnings.catch_warnings():  # the exporter's own progress and deprecation notes
        warnings.simplefilter("ignore")
        _export(_Upsampler(model), (frames,), {"frames": {0: batch, 1: frame_axis}}, ["local"], out / UPSAMPLER_FILE)
        _export(_Synthesis(model), tuple(inputs.values()), shapes, ["waveform"], out / STUDENT_FILE)
    manifest: dict[str, object] = {
        "model": vocoder.name,
        "kind": vocoder.kind,
        "sample_rate": config.audio.sample_rate,
        "hop_length": config.features.hop_length,
        "conditioning": config.features.array_dims(),
        "speakers": list(config.speakers),
        "preemphasis": config.audio.preemphasis,
        "upsampler": {"file": UPSAMPLER_FILE, "inputs": ["frames"], "outputs": ["local"]},
        "student": {"file": STUDENT_FILE, "inputs": list(inputs), "outputs": ["waveform"]},
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
    partial = path.with_name(f".{path.name}.partial")
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
        program.save(str(partial))
    except ImportError as error:
        raise VocoderError(f"ONNX export needs the packages onnx and onnxscript ({error})") from None
    partial.replace(path)


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

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, frames, C]` -> `[B, C', frames * hop]`."""
        [local] = self._upsampler.run(None, {"frames": frames.cpu().numpy()})
        return torch.from_numpy(local)

    def generate(self, local: torch.Tensor, speaker_ids: torch.Tensor | None, uniforms: torch.Tensor) -> torch.Tensor:
        """A waveform `[B, T]` in [-1, 1] from `local [B, C', T]` and `uniforms [B, T]`."""
        feeds = {"local": local.cpu().numpy(), "uniforms": uniforms.cpu().float().numpy()}
        if speaker_ids is not None:
            feeds["speaker_ids"] = speaker_ids.cpu().numpy()
        [waveform] = self._student.run(None, feeds)
        return torch.from_numpy(waveform)
