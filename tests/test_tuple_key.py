"""The tuple key names exactly what decides a deployment's answers: an output-changing field changes
it, a field that does not change answers does not, and adding a config field with a default revokes
no earlier eval."""

from __future__ import annotations

import pytest
from pydantic import Field

from llmfti.config.deployments import DeploymentConfig
from llmfti.registry import deployments as d

BASE = {"name": "qa", "model": "m:1", "feature_group": "docs:1", "retrieval": {"k": 4}}


def key(**overrides) -> str:
    cfg = {**BASE, **overrides}
    return d.tuple_key(DeploymentConfig.model_validate(cfg), 7)


@pytest.mark.parametrize("change", [
    {"generation": {"temperature": 0.7}}, {"generation": {"max_new_tokens": 9}}, {"retrieval": {"k": 2}},
    {"retrieval": {"k": 4, "hybrid": True}}, {"model": "m:2"}, {"prompt_template": "plain"}, {"max_prompt_tokens": 512},
    {"backend": {"dtype": "float32"}},
])
def test_output_changing_fields_change_the_key(change):
    assert key(**change) != key()


@pytest.mark.parametrize("change", [
    {"description": "new words"}, {"log_prompt_text": False}, {"name": "other"}, {"generation": {"timeout_s": 5}},
    {"backend": {"max_batch_size": 2}}, {"retrieval": {"k": 4, "max_k": 50}},
])
def test_fields_that_do_not_change_answers_keep_the_key(change):
    assert key(**change) == key()


def test_commit_is_part_of_the_key():
    cfg = DeploymentConfig.model_validate(BASE)
    assert d.tuple_key(cfg, 7) != d.tuple_key(cfg, 8)


def test_a_new_defaulted_field_revokes_no_eval(monkeypatch):
    class Newer(DeploymentConfig):
        shiny_option: int = Field(3, description="a field added in a later release")

    old = d.tuple_key(DeploymentConfig.model_validate(BASE), 7)
    assert d.tuple_key(Newer.model_validate(BASE), 7) == old  # not listed: never part of the key
    # listed later, joining at its default: configs that keep the default keep their key ...
    monkeypatch.setattr(d, "TUPLE_FIELDS", d.TUPLE_FIELDS + (("shiny_option", 3),))
    assert d.tuple_key(Newer.model_validate(BASE), 7) == old
    # ... and a config that changes it gets a new tuple
    assert d.tuple_key(Newer.model_validate({**BASE, "shiny_option": 4}), 7) != old


def test_the_openai_prompt_mode_is_part_of_the_tuple():
    openai = {"kind": "openai", "base_url": "http://127.0.0.1:8001/v1", "model": "m"}
    assert key(backend={**openai, "prompt_mode": "chat"}) != key(backend=openai)
