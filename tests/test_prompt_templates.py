"""Every YAML in configs/prompts/ validates against PromptTemplate and its name matches the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfti.transforms.model_dependent import load_prompt_template

PROMPTS = sorted((Path(__file__).resolve().parents[1] / "configs" / "prompts").glob("*.yaml"))


def test_the_shipped_templates_exist():
    assert {p.stem for p in PROMPTS} >= {"rag-default", "plain"}


@pytest.mark.parametrize("path", PROMPTS, ids=[p.stem for p in PROMPTS])
def test_prompt_yaml_validates(path):
    tmpl = load_prompt_template(path)
    assert tmpl.name == path.stem
    assert load_prompt_template(path.stem) == tmpl  # lookup by name finds the same file


def test_rag_default_uses_contexts_and_plain_does_not():
    assert load_prompt_template("rag-default").uses_contexts
    assert not load_prompt_template("plain").uses_contexts
