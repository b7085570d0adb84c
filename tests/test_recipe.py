"""The end-to-end recipe in its quick mode: corpus, features, training, distillation, synthesis, evaluation."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HEAVY

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@HEAVY
def test_quick_recipe_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(REPO / "scripts" / "recipe.sh"), "--quick", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=2700,  # a few minutes on a quiet 2-core machine; 15+ beside a training run
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| teacher | 2 |" in summary and "| student | 2 |" in summary
    for system in ("teacher", "student"):
        assert len(list((tmp_path / "synthesized" / system).glob("*.wav"))) == 2
