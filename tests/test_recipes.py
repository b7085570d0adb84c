"""Recipes as overlays: a recipe names a `base:` and states only how it differs; errors name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vocoder.config import CONFIG_DIR, ConfigError, load_config, overlay

MERGED = Path(__file__).parent / "data" / "recipes_merged.json"
"""Every shipped recipe as it loaded before recipes became overlays (`model_dump(mode="json")` of the flat files).
After changing a recipe on purpose, rewrite it (into tests/data/recipes_merged.json):
    python -c 'import json; from vocoder.config import *; print(json.dumps({p.stem: load_config(p).model_dump(
        mode="json") for p in sorted(CONFIG_DIR.glob("*.yaml"))}, indent=1, sort_keys=True))' > MERGED
"""


def recorded(expected: Any, found: Any) -> Any:
    """`found` cut down to what `expected` records: a field added since, with its default, changes no recipe."""
    if isinstance(expected, dict) and isinstance(found, dict):
        return {key: recorded(value, found.get(key)) for key, value in expected.items()}
    return found


@pytest.mark.parametrize("name", sorted(json.loads(MERGED.read_text())))
def test_every_shipped_recipe_merges_to_what_it_was(name: str) -> None:
    expected = json.loads(MERGED.read_text())[name]
    assert recorded(expected, load_config(name).model_dump(mode="json")) == expected


def test_the_record_lists_every_shipped_recipe() -> None:
    assert sorted(json.loads(MERGED.read_text())) == sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def test_mappings_merge_and_everything_else_replaces() -> None:
    base = {"model": {"layers": 16, "upsample_scales": [4, 5, 10]}, "speakers": ["a"], "student": {"flows": [2]}}
    changes = {"model": {"upsample_scales": [4, 4, 5]}, "speakers": [], "student": None}
    assert overlay(base, changes) == {"model": {"layers": 16, "upsample_scales": [4, 4, 5]}, "speakers": []} | {
        "student": None
    }
    assert base["model"]["upsample_scales"] == [4, 5, 10]  # the base is not changed


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_base_beside_the_recipe_wins_over_a_shipped_one(tmp_path: Path) -> None:
    write(tmp_path / "demo_teacher.yaml", {"name": "mine", "model": {"layers": 4, "cycles": 1}})
    mine = load_config(write(tmp_path / "small.yaml", {"base": "demo_teacher", "name": "small"}))
    assert (mine.name, mine.model.layers) == ("small", 4)


def test_a_users_recipe_may_name_a_shipped_base(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "long.yaml", {"base": "demo_teacher", "name": "long", "train": {"seed": 7}}))
    assert config.train.seed == 7 and config.model == load_config("demo_teacher").model


def test_a_missing_base_names_the_file_the_key_and_where_it_looked(tmp_path: Path) -> None:
    recipe = write(tmp_path / "r.yaml", {"base": "nowhere", "name": "r"})
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    assert str(error.value) == (
        f"{recipe}: base: no recipe 'nowhere'; looked for {tmp_path / 'nowhere.yaml'} and {CONFIG_DIR / 'nowhere.yaml'}"
    )


def test_a_cycle_of_bases_is_an_error_naming_the_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"base": "b", "name": "a"})
    write(tmp_path / "b.yaml", {"base": "a.yaml", "name": "b"})
    with pytest.raises(ConfigError, match=r"b\.yaml: base: .* \(a\.yaml -> b\.yaml -> a\.yaml\)"):
        load_config(tmp_path / "a.yaml")


def test_an_unknown_key_names_the_file_that_set_it(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", {"name": "base", "model": {"layres": 4}})
    recipe = write(tmp_path / "r.yaml", {"base": "base", "name": "r", "train": {"batch_szie": 2}})
    with pytest.raises(ConfigError) as error:
        load_config(recipe)
    lines = str(error.value).splitlines()
    assert lines[0] == f"{recipe}: invalid config"
    assert f"  model.layres: Extra inputs are not permitted (from {tmp_path / 'base.yaml'})" in lines
    assert "  train.batch_szie: Extra inputs are not permitted" in lines


def test_a_recipe_with_a_base_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml: name: missing"):
        load_config(write(tmp_path / "r.yaml", {"base": "demo_teacher"}))


def test_base_must_be_a_recipe_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml: base: expected the name of a recipe, found \['demo_teacher'\]"):
        load_config(write(tmp_path / "r.yaml", {"base": ["demo_teacher"], "name": "r"}))
