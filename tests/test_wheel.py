"""The built wheel works away from the checkout: installed into a fresh virtual environment, it synthesizes with
its bundled teacher from a temporary directory, kernels built from its own C++ sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import soundfile

from tests.conftest import HEAVY

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "vocoder", "server", "configs", "models"]
"""What the wheel is built from (pyproject.toml maps server/, configs/ and models/ into it)."""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of its sources: a build in the checkout would leave build/ behind,
    and setuptools packs whatever a stale build/lib holds."""
    root = tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        source, target = REPO / name, root / "src" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "training"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root)]
    built = subprocess.run([*command, str(root / "src")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    return next(root.glob("wavenet_service-*.whl"))


def test_the_wheel_holds_every_module_under_its_import_name(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO)) for p in (REPO / "vocoder").rglob("*.py")}
    expected |= {f"vocoder_server/{p.relative_to(REPO / 'server')}" for p in (REPO / "server").rglob("*.py")}
    assert expected <= names, f"not in the wheel (a package missing from pyproject.toml?): {sorted(expected - names)}"
    assert {"vocoder/generate/csrc/wavenet_step.cpp", "vocoder/bundled_models/teacher/model.safetensors"} <= names
    assert {f"vocoder/recipes/{p.name}" for p in (REPO / "configs").glob("*.yaml")} <= names
    assert not [name for name in names if name.startswith("server/")]


@pytest.mark.slow
@HEAVY
def test_the_installed_wheel_synthesizes_with_its_bundled_teacher_from_tmp(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    # Its dependencies (torch and the rest) come from this interpreter's site-packages rather than an index: added
    # after the install, as a path file, whose own path files (the checkout's editable install) Python never reads.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    outer = [entry for entry in sys.path if entry.endswith("site-packages")]
    (Path(site) / "outer_dependencies.pth").write_text("\n".join(outer) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(REPO / "examples" / "slt_0004_mel.npz", work)
    kernels = tmp_path / "kernels"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VOCODER_MODELS_DIR")}
    env |= {"VOCODER_KERNEL_BUILD": str(kernels)}
    command = [environment / "bin" / "vocoder", "synthesize", "slt_0004_mel.npz", "--out", "out", "--seed", "0"]
    synthesized = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert synthesized.returncode == 0, synthesized.stderr[-3000:]
    assert "fused CPU kernel unavailable" not in synthesized.stderr
    audio, rate = soundfile.read(str(work / "out" / "slt_0004_mel.wav"))
    assert rate == 16000 and len(audio) == 222 * 200 and abs(audio).max() > 0.01
    assert list(kernels.rglob("*.so")), "no kernel built from the installed package's sources"

    probe = "import vocoder, vocoder_server; from vocoder.config import CONFIG_DIR; print(vocoder.__file__, CONFIG_DIR)"
    where = subprocess.run([python, "-c", probe], cwd=work, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert str(REPO) not in where.stdout and where.stdout.split()[1].endswith("vocoder/recipes")
