"""Deployments: versioned tuples, refusals that name the mismatch, rollback, live pick-up."""

import json

import pytest

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.registry.deployments import DeploymentStore


def test_deploy_records_versions_and_rollback_restores_the_tuple(agent_home, tmp_path):
    first = deploy(agent_home, tmp_path, name="rb")
    second = deploy(agent_home, tmp_path, name="rb", commit=1, retrieval={"k": 1})
    store = DeploymentStore(agent_home)
    assert (first["version"], second["version"]) == (1, 2)
    assert store.active("rb")["commit"] == "1" and first["commit"] == "latest"
    back = store.rollback("rb", reason="bad answers")
    assert back["version"] == 1 and store.active("rb")["config"] == first["config"]
    hist = store.history("rb")
    assert [(h["action"], h["version"]) for h in hist] == [("deploy", 1), ("deploy", 2), ("rollback", 1)]
    assert hist[-1]["reason"] == "bad answers"
    assert json.loads((agent_home / "artifacts" / "deployments" / "rb" / "2" / "deployment.json").read_text())["commit"] == "1"
    with pytest.raises(ConfigError, match="no version before 1"):
        store.rollback("rb")
    assert store.rollback("rb", to=2)["version"] == 2


def test_refuses_prompt_template_or_budget_the_model_was_not_registered_with(agent_home, tmp_path):
    with pytest.raises(IncompatibleError, match="prompt template"):
        deploy(agent_home, tmp_path, name="bad-template", prompt_template="plain", retrieval={"k": 0}, feature_group=None)
    with pytest.raises(IncompatibleError, match="budget"):
        deploy(agent_home, tmp_path, name="bad-budget", max_prompt_tokens=64)
    with pytest.raises(NotFoundError):
        DeploymentStore(agent_home).active("bad-template")  # nothing was recorded


def test_refuses_a_feature_group_whose_embedder_differs(agent_home, tmp_path, monkeypatch):
    from llmfti.testing.hash_embedder import HashEmbedder

    monkeypatch.setattr(HashEmbedder, "fingerprint", property(lambda self: "hash-embedder-v2-64"))
    with pytest.raises(IncompatibleError, match="embedder mismatch"):
        deploy(agent_home, tmp_path, name="emb")


def test_refuses_unknown_commit_model_and_feature_group(agent_home, tmp_path):
    with pytest.raises(NotFoundError, match="commit 99"):
        deploy(agent_home, tmp_path, name="c", commit=99)
    with pytest.raises(NotFoundError):
        deploy(agent_home, tmp_path, name="m", model="nope:1")
    with pytest.raises(NotFoundError):
        deploy(agent_home, tmp_path, name="f", feature_group="nope:1")


def test_manager_picks_up_deploy_and_rollback_without_restart(agent_home, tmp_path):
    from llmfti.agents.manager import DeploymentManager
    from llmfti.testing.scripted_generator import ScriptedGenerator

    deploy(agent_home, tmp_path, name="live")
    manager = DeploymentManager(agent_home, generator_override=ScriptedGenerator(["ok"]))
    manager.refresh()
    v1 = manager.get("live")
    deploy(agent_home, tmp_path, name="live", retrieval={"k": 1})
    manager.refresh()
    v2 = manager.get("live")
    assert (v1.version, v2.version) == (1, 2) and v1.config.retrieval.k == 2  # the old runtime is untouched
    DeploymentStore(agent_home).rollback("live")
    manager.refresh()
    assert manager.get("live").version == 1
