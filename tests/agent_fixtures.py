"""Fixtures for agent-service tests: a project home with a hash-embedded feature group, a tiny
registered model, and a helper that writes and deploys a deployment config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import write
from llmfti.pipelines.feature import ingest as run_ingest


def make_home(root: Path) -> Path:
    from llmfti.config import FeatureConfig
    from llmfti.registry import ModelRegistry
    from llmfti.store import FeatureStore
    from llmfti.testing.tiny_models import save_tiny_model

    home = root / "home"
    corpus = root / "corpus"
    write(corpus / "with.md", "# The with statement\n\nThe with statement wraps a block with a context manager; __exit__ always runs.\n")
    write(corpus / "loops.md", "# Loops\n\nA for loop iterates over an iterable. A while loop repeats while a condition holds.\n")
    write(corpus / "gen.md", "# Generators\n\nGenerators yield values lazily and keep their state between calls.\n")
    fg = FeatureStore(home).feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=FeatureConfig(embedder={"model": "hash-64"}))
    registry = ModelRegistry(home)
    registry.import_base_model(str(save_tiny_model(root / "tiny-model")), "tiny")
    registry.ensure_base_version("tiny")
    return home


def deploy(home: Path, tmp: Path, *, force: bool = False, **overrides) -> dict:
    from llmfti.config import load_config
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.deployment import check_deployment
    from llmfti.registry.deployments import DeploymentStore

    config = {"name": "docs-qa", "model": "tiny:1", "feature_group": "docs:1", "commit": "latest",
              "retrieval": {"k": 2, "max_k": 5, "filters": ["doc_id"]}, "generation": {"max_new_tokens": 8, "timeout_s": 5}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(DeploymentConfig, path)
    store = DeploymentStore(home)
    return store.deploy(cfg, checks=check_deployment(cfg, store.home), force=force)


@pytest.fixture(scope="module")
def agent_home(tmp_path_factory) -> Path:
    return make_home(tmp_path_factory.mktemp("agent"))
