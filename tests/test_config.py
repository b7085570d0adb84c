from pathlib import Path

import pytest
import yaml

from vocoder.config import CONFIG_DIR, ConfigError, load_config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_config_loads(path: Path) -> None:
    assert load_config(path).name


def test_recipe_is_addressable_by_name() -> None:
    config = load_config("seed_size")
    assert config.model.dilations == [2**i for i in range(10)] * 3


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def seed() -> dict:
    return yaml.safe_load((CONFIG_DIR / "seed_size.yaml").read_text())


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    data = seed()
    data["model"]["resdiual_channels"] = 32
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"bad\.yaml.*\n.*model\.resdiual_channels"):
        load_config(path)


def test_bad_value_names_key(tmp_path: Path) -> None:
    data = seed()
    data["model"]["kernel_size"] = 1
    with pytest.raises(ConfigError, match=r"model\.kernel_size"):
        load_config(write(tmp_path, data))


def test_upsampling_must_match_hop(tmp_path: Path) -> None:
    data = seed()
    data["features"]["hop_length"] = 256
    with pytest.raises(ConfigError, match="upsample_scales.*hop_length is 256"):
        load_config(write(tmp_path, data))


def test_linguistic_needs_its_dimension(tmp_path: Path) -> None:
    data = seed()
    data["features"]["conditioning"] = ["linguistic", "lf0"]
    with pytest.raises(ConfigError, match="linguistic_dim"):
        load_config(write(tmp_path, data))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(broken)
    scalar = write(tmp_path, 3)
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_linguistic_recipes_match_the_question_set(path: Path) -> None:
    from vocoder.features.linguistic import linguistic_dim

    config = load_config(path)
    if "linguistic" in config.features.conditioning:
        assert config.features.linguistic_dim == linguistic_dim()
        assert config.features.dim == linguistic_dim() + 2  # lf0 and vuv
    else:  # an acoustic recipe: no linguistic width to match, and its width is the mel bands'
        assert config.features.linguistic_dim is None
        assert config.features.dim == config.features.n_mels * ("mel" in config.features.conditioning) + sum(
            1 for name in config.features.conditioning if name in ("lf0", "vuv")
        )
