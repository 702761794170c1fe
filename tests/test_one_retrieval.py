"""One retrieval, one prompt: a training example's prompt ids are exactly what the agent's own
inference pipeline builds for the same question at the same commit (its code, not a re-implementation
here), with the same retrieval settings: hybrid or not, the normalized question from the same
on-demand function."""

from __future__ import annotations

import pytest

from agent_fixtures import deploy, make_home
from td_fixtures import ingest_records, write_jsonl

QUESTIONS = ["What does the   with statement do?", "How do ﬁnite generators yield\tvalues?", "When does a while loop repeat?"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("oneretrieval"))


@pytest.mark.parametrize("hybrid", [False, True], ids=["vector", "hybrid"])
def test_training_prompts_equal_what_the_agent_builds(home, tmp_path, hybrid):
    from llmfti.pipelines.inference.online import prepare
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.pipelines.training_dataset import create
    from llmfti.store import FeatureStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    store = FeatureStore(home)
    rows = [{"id": f"q{i}", "question": q, "answer": "An answer [1].", "event_time": "2024-01-01"} for i, q in enumerate(QUESTIONS)]
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", rows), name=f"qa-{hybrid}")
    commit = store.feature_group("docs:1").resolve_commit(None)
    ds = create(store, name=f"contract-{hybrid}", source=f"qa-{hybrid}", contexts=f"docs:1@{commit}", top_k=2, model="tiny:1",
                hybrid=hybrid, on_demand=["normalized_question"])
    name = f"contract-{'h' if hybrid else 'v'}"
    record = deploy(home, tmp_path, name=name, commit=commit, retrieval={"k": 2, "hybrid": hybrid}, on_demand=["normalized_question"])
    runtime = build_runtime(home, record, RuntimeCache(), ScriptedGenerator(["x"]))
    examples = {r["question"]: r for r in ds.examples(columns=["question", "input_ids", "prompt_length", "context_ids"])}
    for question in QUESTIONS:
        served = prepare(runtime, {"question": question})
        ex = examples[question]
        assert served.commit == commit
        assert [r["chunk_id"] for r in served.rows] == list(ex["context_ids"])
        assert served.encoded.input_ids == list(ex["input_ids"])[: ex["prompt_length"]], question
