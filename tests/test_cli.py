"""The console script end to end: copy synthesis in two commands, clear errors, the benchmark's JSON.

Commands run through `main()`, the function the console script calls, in the test process: a fresh interpreter per
command would spend seconds importing torch each time. What only a fresh process shows (`python -m vocoder.cli`,
the imports of `--help`) runs in one."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import soundfile
import torch
import yaml

import vocoder
from tests.conftest import TINY, tiny_config, tone
from vocoder.audio import save_wav
from vocoder.features.acoustic import extract_features
from vocoder.features.featurefile import read_features, save_features

VOCODER = [sys.executable, "-m", "vocoder.cli"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`vocoder ARGS` through `main()` with `env` added to the environment: its exit status and what it printed.

    An exception other than the `SystemExit` that ends every command propagates, as a traceback would end the
    process. The torch thread count a command sets (`bench`) is restored afterwards."""
    from vocoder.cli import main

    stdout, stderr, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with (
            mock.patch.dict(os.environ, env or {}),
            mock.patch.object(sys, "argv", ["vocoder", *args]),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["vocoder", *args], code, stdout.getvalue(), stderr.getvalue())


def test_copy_synthesis_takes_two_commands(tiny_model_file: Path, tmp_path: Path) -> None:
    wavs = [tmp_path / "in" / "a.wav", tmp_path / "in" / "b.flac"]
    save_wav(wavs[0], tone(0.1), 16000)
    save_wav(wavs[1], tone(0.06, 150), 16000, "flac")
    extracted = run(
        "extract",
        *map(str, wavs),
        "--out",
        str(tmp_path / "feats"),
        "--model",
        str(tiny_model_file),
        "--speaker",
        "bob",
    )
    assert extracted.returncode == 0, extracted.stderr
    assert read_features(tmp_path / "feats" / "a.npz").speaker == "bob"
    synthesized = run(
        "synthesize",
        str(tmp_path / "feats" / "a.npz"),
        str(tmp_path / "feats" / "b.npz"),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model_file),
        "--seed",
        "3",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    )
    assert synthesized.returncode == 0, synthesized.stderr
    assert "sample/s" in synthesized.stderr and "samples/s" in synthesized.stdout
    audio, rate = soundfile.read(str(tmp_path / "out" / "a.wav"))
    assert rate == 16000 and len(audio) == 1600 and np.abs(audio).max() > 0


def test_extract_notes_resampling_and_mixing_down(tiny_model_file: Path, tmp_path: Path) -> None:
    stereo = tmp_path / "stereo.wav"
    soundfile.write(str(stereo), np.stack([tone(0.1, sample_rate=44100)] * 2, axis=1), 44100)
    mono = tmp_path / "mono.wav"
    save_wav(mono, tone(0.1), 16000)
    result = run(
        "extract", str(stereo), str(mono), "--out", str(tmp_path / "feats"), "--model", str(tiny_model_file),
        "--speaker", "bob",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {stereo}: 2 channels mixed down to mono; resampled from 44100 Hz to the model's 16000 Hz"]


def test_bundled_name_is_the_default_model(tiny_model_file: Path, tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    save_wav(wav, tone(0.05), 16000)
    env = {"VOCODER_MODELS_DIR": str(tmp_path / "empty")}
    missing = run("extract", str(wav), "--out", str(tmp_path / "a.npz"), env=env)
    assert missing.returncode == 2 and "teacher: no such model" in missing.stderr
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "teacher").symlink_to(tiny_model_file.parent)
    found = run(
        "extract",
        str(wav),
        "--out",
        str(tmp_path / "a.npz"),
        "--speaker",
        "alice",
        env={"VOCODER_MODELS_DIR": str(tmp_path / "models")},
    )
    assert found.returncode == 0, found.stderr


def test_bad_inputs_fail_with_one_clear_line(tiny_model_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    result = run("synthesize", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_model_file))
    assert result.returncode == 2
    assert "error: " in result.stderr and "bad.npz: field 'file'" in result.stderr
    assert "Traceback" not in result.stderr
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....")
    good = tmp_path / "good.wav"
    save_wav(good, tone(0.05), 16000)
    partial = run("extract", str(corrupt), str(good), "--out", str(tmp_path / "f"), "--model", str(tiny_model_file))
    assert partial.returncode == 2
    assert "corrupt.wav: cannot read audio" in partial.stderr and "1 of 2 inputs" in partial.stderr
    assert (tmp_path / "f" / "good.npz").is_file()
    strategy = run(
        "synthesize",
        str(tmp_path / "f" / "good.npz"),
        "--out",
        str(tmp_path / "o"),
        "--model",
        str(tiny_model_file),
        "--strategy",
        "beam",
        "--speaker",
        "bob",
    )
    assert strategy.returncode == 2 and "strategy: expected one of" in strategy.stderr
    top_k = run("synthesize", str(tmp_path / "f" / "good.npz"), "--out", str(tmp_path / "o"), "--top-k", "1000000000")
    assert top_k.returncode == 2  # the limit of the service and the API (vocoder.constants.TOP_K_MAX), not a hang
    assert top_k.stderr.strip() == "error: top_k: expected an integer from 1 to 65536, found 1000000000"


def test_a_student_names_the_settings_it_ignores(tmp_path: Path) -> None:
    from tests.test_student import STUDENT
    from vocoder.models.checkpoint import save_model
    from vocoder.models.student import StudentWaveNet

    config = tiny_config(student=STUDENT)
    student = save_model(tmp_path / "student.safetensors", StudentWaveNet(config), config, "student", {})
    features = tmp_path / "a.npz"
    save_features(features, extract_features(tone(0.05), config, speaker="bob"))
    args = ["synthesize", str(features), "--model", str(student), "--seed", "1"]
    plain = run(*args, "--out", str(tmp_path / "plain.wav"))
    assert plain.returncode == 0 and "note:" not in plain.stderr, plain.stderr
    shaped = run(*args, "--out", str(tmp_path / "shaped.wav"), "--strategy", "argmax", "--top-k", "4")
    assert shaped.returncode == 0, shaped.stderr
    (note,) = (line for line in shaped.stderr.splitlines() if line.startswith("note:"))
    assert note == (
        "note: student (student) ignores --strategy, --top-k: a student draws the whole waveform in one pass "
        "from noise that only the seed and temperatures set"
    )
    assert (tmp_path / "plain.wav").read_bytes() == (tmp_path / "shaped.wav").read_bytes()
    quiet = run(*args, "--out", str(tmp_path / "quiet.wav"), "--temperature", "0.5")  # scales its noise
    assert quiet.returncode == 0 and "note:" not in quiet.stderr, quiet.stderr
    assert (tmp_path / "plain.wav").read_bytes() != (tmp_path / "quiet.wav").read_bytes()


@pytest.mark.slow
def test_bench_generation_prints_json(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = run(
        "bench",
        "generation",
        "--config",
        str(config),
        "--json",
        "--repeats",
        "1",
        "--naive-steps",
        "20",
        "--fast-steps",
        "100",
        "--batch-steps",
        "50",
        "--batch-sizes",
        "4,16",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "naive_samples_per_s",
        "fast_samples_per_s",
        "fast_batch4_samples_per_s",
        "fast_batch16_samples_per_s",
        "fast_torch_batch4_samples_per_s",
        "speedup_fast_vs_naive",
        "receptive_field",
        "params",
        "device",
        "threads",
    ):
        assert key in report
    assert report["receptive_field"] == 16 and report["fast_samples_per_s"] > 0
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]  # stderr: stdout stays the report
    names = ["naive", "fast", "fast_torch", "fast_torch_batch4", "fast_batch4", "fast_batch16"]
    names += ["student", "student_torch"]
    assert [line.split("]")[0] for line in progress] == [f"[{k}/8" for k in range(1, 9)], result.stderr
    assert [line.split(" ")[1] for line in progress] == [f"{name}:" for name in names]
    assert not any(line.startswith("[") for line in result.stdout.splitlines())
    bad = run("bench", "generation", "--config", str(config), "--batch-sizes", "8,x")
    assert bad.returncode == 2 and "--batch-sizes" in bad.stderr
    precision = run("bench", "generation", "--config", str(config), "--precision", "fp8")
    assert precision.returncode == 2 and "precision: expected one of ['fp32', 'fp16', 'int8']" in precision.stderr


@pytest.mark.slow
def test_bench_training_prints_json(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {"batch_size": 2, "segment_frames": 4}}))
    result = run("bench", "training", "--config", str(config), "--json", "--steps", "2", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["train_samples_per_s"] > 0 and report["segment_samples"] == (1 + 4) * 40


@pytest.mark.slow
def test_bench_kernel_prints_json(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    args = ("--config", str(config), "--precisions", "fp32,fp16", "--modes", "1t", "--steps", "200", "--repeats", "2")
    result = run("bench", "kernel", *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(report["rates"]) == ["fp32/1t", "fp16/1t"] and report["steps"] == 200
    assert all(0 < figures["min"] <= figures["median"] <= figures["max"] for figures in report["rates"].values())
    bad = run("bench", "kernel", "--config", str(config), "--modes", "1t,both")
    assert bad.returncode == 2 and "--modes" in bad.stderr and "'both'" in bad.stderr


def refuse_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process `vocoder serve` that passes the checks a test expects to fail fails the test instead of
    serving (and blocking it) forever."""
    from vocoder_server.serving import ServiceServer

    def serve(self: ServiceServer) -> None:
        raise AssertionError("vocoder serve got past the check that should have refused it")

    monkeypatch.setattr(ServiceServer, "run", serve)


@pytest.mark.parametrize(
    "command",
    [["synthesize", "{examples}/slt_0004_mel.npz", "--out", "{tmp}/x.wav"], ["serve"]],
    ids=["synthesize", "serve"],
)
def test_a_missing_gpu_is_one_line_and_a_failure(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU, whatever the machine has
    refuse_to_serve(monkeypatch)
    args = [part.format(tmp=tmp_path, examples=EXAMPLES) for part in command]
    result = run(*args, "--device", "cuda")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == "error: device 'cuda': no CUDA GPU is available on this machine; use cpu"


def test_version() -> None:
    """In a fresh interpreter: `python -m vocoder.cli` reaches the app (as the console script does)."""
    result = subprocess.run([*VOCODER, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"vocoder {vocoder.__version__}"


HEAVY_LIBRARIES = ("torch", "scipy", "librosa", "matplotlib", "soundfile")  # typer itself loads pydantic
HELP_PAGES = [[], ["synthesize"], ["extract"], ["bench", "generation"], ["mos", "export"], ["serve"], ["train"]]


def test_help_imports_no_heavy_library() -> None:
    """`vocoder --help` answers in a fraction of a second because command modules import the library when a
    command runs: the help of the app and of its commands loads none of torch, scipy, librosa or matplotlib."""
    script = (
        "import sys\nfrom vocoder.cli import main\n"
        f"for args in {HELP_PAGES!r}:\n"
        "    sys.argv = ['vocoder', *args, '--help']\n"
        "    try:\n        main()\n    except SystemExit as stop:\n        assert stop.code == 0, (args, stop.code)\n"
        f"print(sorted(name for name in {HEAVY_LIBRARIES!r} if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_shows_no_value_type_beside_a_flag() -> None:
    from typer.testing import CliRunner

    from vocoder.cli import app

    for args in [*HELP_PAGES, ["frontend"], ["evaluate"]]:
        page = CliRunner().invoke(app, [*args, "--help"], terminal_width=200).output
        assert "--version" in page or args, page
        assert "<bool>" not in page, (args, page)
    assert "<int" in CliRunner().invoke(app, ["synthesize", "--help"], terminal_width=200).output  # others keep theirs


EXIT_2 = {
    "train": ["train", "--config", "no_such_recipe", "--data", "{tmp}/feats", "--out", "{tmp}/run"],
    "distill": [
        "distill",
        "--teacher",
        "teacher",
        "--config",
        "{tmp}/missing.yaml",
        "--data",
        "{tmp}/f",
        "--out",
        "{tmp}/r",
    ],
    "preprocess": ["preprocess", "{tmp}", "--layout", "no-such-layout", "--out", "{tmp}/cache"],
    "mos": [
        "mos",
        "analyze",
        "--test",
        "{tmp}/pkg",
        "--key",
        "{tmp}/pkg.key.json",
        "--ratings",
        "{tmp}/r.csv",
        "--out",
        "{tmp}/o",
    ],
    "bundle": ["bundle", "{tmp}/no-such-run/model", "--name", "x", "--models-dir", "{tmp}/models"],
    "frontend": ["frontend", "Hello.", "--out", "{tmp}/tts", "--config", "seed_size"],
    "corpus": ["corpus", "real", "--out", "{tmp}/real", "--sources", "no-such-source", "--no-install"],
}
"""A bad input to each command that reaches the library (past click's own checks), so the exit status is main()'s."""


@pytest.mark.parametrize("command", sorted(EXIT_2))
def test_each_command_ends_bad_input_with_one_line_and_exit_status_2(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real entry point (`main()`, as the console script runs it): a VocoderError is one `error:`
    line on stderr and exit status 2, for every command, not a traceback and not click's usage status."""
    from vocoder.cli import main

    monkeypatch.setattr(sys, "argv", ["vocoder", *(arg.format(tmp=tmp_path) for arg in EXIT_2[command])])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Usage:" not in err, err
