"""Shared set-up of the eval-gate tests: a three-case suite and its gate, a deployment config that passes
it, a home with the tiny model and two feature groups, and short-hands to stage and run an eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent_fixtures import make_home
from conftest import write
from llmfti.pipelines.feature import ingest as run_ingest

CASES = [
    {"id": "with", "question": "What does the with statement wrap a block with?", "reference": "A context manager; __exit__ always runs.",
     "reference_contexts": ["The with statement wraps a block with a context manager; __exit__ always runs."], "source_ids": ["with.md"]},
    {"id": "loops", "question": "What does a for loop iterate over?", "reference": "A for loop iterates over an iterable.",
     "reference_contexts": ["A for loop iterates over an iterable."], "source_ids": ["loops.md"]},
    {"id": "gen", "question": "How do generators yield values?", "reference": "Generators yield values lazily and keep their state.",
     "reference_contexts": ["Generators yield values lazily and keep their state between calls."], "source_ids": ["gen.md"]},
]
GATE = {"thresholds": {"hit_at_k": 0.9, "mrr": 0.9, "non_llm_context_recall": 0.9, "non_llm_context_precision_with_reference": 0.4, "rouge_score": 0.0},
        "worst_cases": 2, "judge": {"runs": 3, "thresholds": {"faithfulness": 0.5}}}
GOOD = {"name": "qa", "model": "tiny:1", "feature_group": "docs:1", "commit": "latest", "retrieval": {"k": 2},
        "generation": {"max_new_tokens": 8, "timeout_s": 30}}


def write_suite(root: Path, cases=CASES, gate=GATE, name: str = "mini") -> Path:
    folder = root / name
    write(folder / "cases.jsonl", "".join(json.dumps(c) + "\n" for c in cases))
    write(folder / "gate.yaml", yaml.safe_dump(gate))
    return folder


def config(**overrides):
    from llmfti.config.deployments import DeploymentConfig

    return DeploymentConfig.model_validate({**GOOD, **overrides})


def stage(home, **overrides) -> dict:
    from llmfti.pipelines.deployment import promote
    from llmfti.registry.deployments import DeploymentStore

    return promote(DeploymentStore(home), config(**overrides), stage=True)


@pytest.fixture(scope="module")
def eval_home(tmp_path_factory) -> Path:
    from llmfti.config import FeatureConfig
    from llmfti.store import FeatureStore

    root = tmp_path_factory.mktemp("evalgate")
    home = make_home(root)
    write(root / "other" / "cooking.md", "# Soup\n\nBoil water, add salt and vegetables, simmer for an hour.\n")
    write(root / "other" / "garden.md", "# Garden\n\nWater tomatoes in the morning; prune them weekly.\n")
    run_ingest(FeatureStore(home).feature_group("other", must_exist=False), [str(root / "other")], config=FeatureConfig(embedder={"model": "hash-64"}))
    return home


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from llmfti.evaluation.suites import load_suite

    return load_suite(write_suite(tmp_path_factory.mktemp("suites")))


def run(home, suite, record, **kw):
    from llmfti.pipelines.evaluation import run_eval

    return run_eval(home, suite, record, **kw)
