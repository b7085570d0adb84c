"""The command blocks of docs/*.md, with the README's machinery (tests/test_readme.py): a `bash run` block runs as
written in an empty folder; every other `bash`/`sh` block is checked without its data, GPUs or hours: each `vocoder`
command parses (and its recipe exists), a script's flags are its own, a `make` target and the Dockerfile exist, and
each `curl` names a route the service serves with query parameters it takes."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.test_readme import REPO, blocks, commands, fake_venv, parses

DOCS = sorted((REPO / "docs").glob("*.md"))
SHELLS = ("bash", "sh")
ELSEWHERE = {
    "tensorboard": "TensorBoard's own command (a dependency); the logs it reads are checked in tests/test_train.py",
    "while": "the body of a `bash run` block, run by test_run_blocks_run_as_written",
    "mkdir": "the body of a `bash run` block, run by test_run_blocks_run_as_written",
    "rm": "the body of a `bash run` block, run by test_run_blocks_run_as_written",
    "python -": "a here-document of a `bash run` block, run by test_run_blocks_run_as_written",
    "git archive": "git's own command: unpacks another checkout for `vocoder bench memory --compare`",
}
"""Commands that are not checked here, and why."""
ENV = re.compile(r"^(\w+=\S+\s+)+")


def doc_commands() -> list[tuple[str, str, str]]:
    """(document, block options, command) of every shell block of docs/."""
    found = []
    for document in DOCS:
        for kind in SHELLS:
            for options, body in blocks(kind, document):
                found += [(document.name, options, command) for command in commands(body)]
    return found


def check_vocoder(command: str) -> None:
    """It parses, and the recipe it names is a bundled config (a path passes as it is)."""
    parses(command)
    args = shlex.split(command)
    for flag, value in itertools.pairwise(args):
        if flag == "--config" and not value.endswith((".yaml", ".yml")):
            assert (REPO / "configs" / f"{value}.yaml").is_file(), f"{command}: no recipe configs/{value}.yaml"


def check_script(command: str) -> None:
    """A project script exists and declares every flag the command passes."""
    args = shlex.split(command)
    script = REPO / next(arg for arg in args if arg.endswith(".py"))
    source = script.read_text()
    for flag in (arg for arg in args if arg.startswith("--")):
        assert f'"{flag}"' in source, f"{command}: {script.name} has no {flag}"


def check_curl(command: str, served: dict[str, object], query: set[str]) -> None:
    """Every URL is a served route (or a placeholder model name), and its query parameters are the service's."""
    for url in re.findall(r"localhost:\d+(/[^\s\"']*)", command):
        parts = urlsplit(url)
        assert parts.path in served, f"{command}: {parts.path} is not a route"
        unknown = set(parse_qs(parts.query)) - query
        assert not unknown, f"{command}: unknown query parameters {unknown}"


@pytest.mark.slow
def test_every_shell_command_of_the_docs_is_checked() -> None:
    from vocoder_server import Settings, create_app
    from vocoder_server.schemas import SynthesisParams

    served = create_app(Settings()).openapi()["paths"]
    query = set(SynthesisParams.model_fields)
    found = doc_commands()
    assert len({document for document, _, _ in found}) == 6, "docs with shell blocks"
    unchecked = set()
    for document, _, command in found:
        bare = ENV.sub("", command).rstrip(" &")
        where = f"docs/{document}: {command}"
        if bare.startswith("vocoder "):
            check_vocoder(bare)
        elif bare.startswith("torchrun "):
            check_vocoder("vocoder " + bare.split("-m vocoder.cli ", 1)[1])
        elif re.match(r"(\.venv/bin/)?python3? benchmarks/", bare):
            check_script(bare)
        elif bare.startswith("curl "):
            check_curl(bare, served, query)
        elif bare.startswith("make "):
            target = shlex.split(bare)[1]
            assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.MULTILINE), where
        elif bare.startswith("docker build"):
            assert (REPO / "Dockerfile").is_file(), where
        else:
            unchecked.add(next((prefix for prefix in ELSEWHERE if bare.startswith(prefix)), bare))
    assert unchecked <= set(ELSEWHERE), f"commands no check covers: {sorted(unchecked - set(ELSEWHERE))}"


def test_the_python_blocks_of_the_docs_compile_and_import() -> None:
    """The docs' Python snippets compile and what they import exists (they read files the reader has)."""
    snippets = [(document, body) for document in DOCS for _, body in blocks("python", document)]
    assert snippets
    for document, body in snippets:
        compile(body, str(document), "exec")
        imports = "\n".join(line for line in body.splitlines() if re.match(r"(from \S+ )?import ", line))
        exec(compile(imports, str(document), "exec"), {})


@pytest.mark.slow
def test_run_blocks_run_as_written(tmp_path: Path) -> None:
    """docs/EVALUATION.md's worked example: espeak-ng references, two degradations, `vocoder evaluate`."""
    runnable = [body for document in DOCS for options, body in blocks("bash", document) if options == "bash run"]
    assert runnable
    fake_venv(tmp_path)
    script = "\n".join(["set -euo pipefail", ". .venv/bin/activate", *runnable])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "example" / "report" / "summary.md").read_text()
    assert "| mulaw8 | 8 |" in summary and "| lowpass4k | 7 |" in summary
    assert "lowpass4k: 1 missing: h08" in summary
