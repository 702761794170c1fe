"""Every YAML under configs/ validates against the pydantic model of its folder."""

from pathlib import Path

import pytest

from llmfti.config import CONFIG_MODELS, load_config

ROOT = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.relative_to(ROOT).parts[0] in CONFIG_MODELS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_validates(path):
    load_config(CONFIG_MODELS[path.relative_to(ROOT).parts[0]], path)


def test_every_config_folder_with_yaml_has_a_model():
    folders = {p.relative_to(ROOT).parts[0] for p in ROOT.rglob("*.yaml")}
    assert folders <= set(CONFIG_MODELS) | {"prompts"}, folders - set(CONFIG_MODELS)


def test_unknown_keys_are_errors(tmp_path):
    from llmfti.config import FeatureConfig
    from llmfti.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("chunker:\n  chunk_tokns: 100\n")
    with pytest.raises(ConfigError, match="chunk_tokns"):
        load_config(FeatureConfig, bad)
