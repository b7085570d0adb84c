"""The README as a script: its `bash` blocks run as written, in order, in an empty folder, then its Python block;
the commands of its `bash slow` blocks (hours of training, minutes of benchmarks) must parse."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import HEAVY
from vocoder.cli import app

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_VOCODER = {
    "make demo": "scripts/demo.py, which `make demo` runs, has its own checks; this suite is `make test`",
    "make test": "this suite is `make test`",
    "scripts/recipe.sh": "tests/test_recipe.py runs it with --quick",
    "make corpus-real": "installs 150 MB of Debian packages: run by hand; tests/test_real_corpus.py covers its code",
    "make corpus-demo": "Festival reads 600 sentences (about 10 minutes): tests/test_preprocess.py covers the code",
}
"""Commands of slow blocks that are not `vocoder` commands, and where they are exercised instead."""


HEREDOC = re.compile(r"<<'(\w+)'\n.*?^\1$", re.MULTILINE | re.DOTALL)


def blocks(kind: str, document: Path = REPO / "README.md") -> list[tuple[str, str]]:
    """(language + options, body) of every fenced block of `document` (README.md) whose language is `kind`."""
    text = document.read_text()
    return [(lang + rest, body) for lang, rest, body in BLOCK.findall(text) if lang == kind]


def commands(body: str) -> list[str]:
    """The commands of a block: comments and here-documents dropped, continued lines joined."""
    joined = re.sub(r"\\\n\s*", " ", HEREDOC.sub("", body))
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def parses(command: str) -> None:
    """A `vocoder ...` command parses: click reads every option before it answers --help, so a wrong flag fails."""
    result = CliRunner().invoke(app, [*shlex.split(command)[1:], "--help"])
    assert result.exit_code == 0, f"{command}: {result.output[-1000:]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_venv(folder: Path) -> None:
    """`.venv/bin/activate` in the empty folder: puts this interpreter's `vocoder` and `python` on the PATH."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "vocoder").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m vocoder.cli "$@"\n')
    # A script, not a symlink: a link to the venv's python from another folder would lose the venv (no pyvenv.cfg).
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for script in ("vocoder", "python"):
        (bin_dir / script).chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')


@pytest.mark.slow
@HEAVY
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    fake_venv(tmp_path)
    port = free_port()
    script = "\n".join(["set -euo pipefail", *(body for _, body in blocks("bash") if "bash slow" not in _)])
    script = script.replace("localhost:8000", f"localhost:{port}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VOCODER_PORT": str(port), "VOCODER_MODELS_DIR": str(REPO / "models")}
    log = tmp_path / "readme.log"  # a file, not a pipe: a process the service leaves behind cannot hold it open
    with log.open("w") as output:
        command = ["bash", "-c", script]
        result = subprocess.run(command, cwd=tmp_path, env=env, stdout=output, stderr=output, timeout=1800)
    assert result.returncode == 0, log.read_text()[-6000:]
    for made in ("wavs/teacher/kettle.wav", "wavs/student/kettle.wav", "report/summary.md", "mos-test/index.html"):
        assert (tmp_path / made).is_file(), made
    for made in ("wavs/tts/utt.wav", "teacher.wav", "student.wav", "tts.wav", "stream.wav"):
        assert (tmp_path / made).read_bytes()[:4] == b"RIFF", made

    (python_block,) = (body for _, body in blocks("python"))
    result = subprocess.run([sys.executable, "-c", python_block], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_slow_blocks_parse() -> None:
    slow = [command for options, body in blocks("bash") if "slow" in options for command in commands(body)]
    assert slow, "the README has slow blocks"
    vocoder = [command for command in slow if command.startswith("vocoder ")]
    assert sorted(set(slow) - set(vocoder)) == sorted(NOT_VOCODER)
    for command in vocoder:
        parses(command)


def test_serve_help_and_the_readme_list_every_route() -> None:
    from vocoder_server import Settings, create_app

    served = create_app(Settings()).openapi()["paths"]
    help_text = " ".join(CliRunner().invoke(app, ["serve", "--help"]).output.split())
    readme = (REPO / "README.md").read_text()
    for route in served:
        assert route in help_text and route in readme, route
