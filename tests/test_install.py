"""Where the package finds its files (recipes, bundled models, the kernel cache) and what its model cards may say."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from vocoder import paths
from vocoder.models.checkpoint import CheckpointError, resolve_model_path
from vocoder.native import build_directory
from vocoder_server.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_uses_its_own_configs_and_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    assert paths.recipes_dir() == REPO / "configs"
    assert paths.bundled_models_dir() == REPO / "models"


def test_an_installed_package_uses_the_copies_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site-packages" / "vocoder"
    (package / "recipes").mkdir(parents=True)
    (package / "bundled_models").mkdir()
    monkeypatch.setattr(paths, "PACKAGE", package)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    assert paths.recipes_dir() == package / "recipes"
    assert paths.bundled_models_dir() == package / "bundled_models"


def test_models_dir_variable_replaces_the_bundled_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path))
    assert paths.bundled_models_dir() == tmp_path


def test_kernels_are_cached_in_the_user_cache_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(paths.KERNELS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.kernel_cache_dir() == tmp_path / "cache" / "wavenet-service" / "kernels"
    monkeypatch.setenv(paths.KERNELS_ENV, str(tmp_path / "kernels"))
    assert paths.kernel_cache_dir() == tmp_path / "kernels"


def test_a_missing_model_names_every_place_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    with pytest.raises(CheckpointError) as shipped:
        resolve_model_path("absent")
    message = str(shipped.value)
    for place in (tmp_path / "absent", tmp_path / "absent" / "model.safetensors", REPO / "models" / "absent"):
        assert str(place) in message
    assert "shipped with the package; $VOCODER_MODELS_DIR overrides" in message
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "mine"))
    with pytest.raises(CheckpointError, match=r"mine/absent/model.safetensors \(\$VOCODER_MODELS_DIR\)"):
        resolve_model_path("absent")


def test_a_service_without_models_logs_the_folder_it_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "empty")
    with caplog.at_level(logging.ERROR, logger="server"):
        registry.load_all()
    assert f"no */model.safetensors under {tmp_path / 'empty'}" in caplog.text
    assert str(tmp_path) not in " ".join(registry.problems())


@pytest.mark.parametrize("card", sorted((REPO / "models").glob("*/*.md")) + sorted((REPO / "models").glob("*/*.yaml")))
def test_bundled_model_files_name_no_path_of_the_building_machine(card: Path) -> None:
    text = card.read_text()
    quoted = re.findall(r"`([^`]+)`", text)
    assert not [span for span in quoted if span.startswith(("/", "~"))]
    assert not re.search(r"/(?:work|home|root|tmp|Users)/", text)


def test_checkouts_sharing_the_kernel_cache_build_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.KERNELS_ENV, str(tmp_path / "kernels"))
    one, other = (tmp_path / "one" / "wavenet_step.cpp", tmp_path / "other" / "wavenet_step.cpp")
    assert build_directory(one) != build_directory(other)
    assert build_directory(one).parent == build_directory(other).parent
    assert build_directory(one).is_relative_to(tmp_path / "kernels")
