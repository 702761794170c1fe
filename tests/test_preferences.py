"""Preference pairs: the preferences kind ingested from JSONL like records; `td create` encodes a pair
with the one prompt encoder (prompt ids equal to what the agent's own pipeline builds for the question,
answers ending with EOS); pairs built from reference answers and a deployment's own answers keep the
served prompt's contexts, so the training prompt is the prompt that produced the rejected answer."""

from __future__ import annotations

import json

import pytest

from agent_fixtures import deploy, make_home
from td_fixtures import QA, ingest_records, qa_rows, write_jsonl

QUESTIONS = ["What does the   with statement do?", "How do generators yield values?", "When does a while loop repeat?"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("prefs"))


def _ingest_prefs(store, path, name="prefs"):
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.feature import ingest

    return ingest(store.feature_group(name, must_exist=False), [str(path)], config=FeatureConfig(kind="preferences", embedder={"model": "hash-64"}))


def test_preferences_kind_ingests_pairs_and_quarantines_bad_ones(home, tmp_path):
    from llmfti.store import FeatureStore

    store = FeatureStore(home)
    rows = [{"id": "a", "prompt": "What does yield do?", "chosen": "It produces values lazily [1].", "rejected": "It stops a loop.",
             "context_ids": [], "event_time": "2024-01-01"},
            {"id": "b", "question": "What is a for loop?", "chosen": "A loop over an iterable [1].", "rejected": "A function."},
            {"id": "c", "prompt": "Same?", "chosen": "Yes.", "rejected": " Yes. "},
            {"id": "d", "prompt": "Missing?", "chosen": "No rejected answer."}]
    summary = _ingest_prefs(store, write_jsonl(tmp_path / "p.jsonl", rows), "kinds")
    assert summary.documents["added"] == 2 and summary.documents["quarantined"] == 2
    reasons = {q["source"].rsplit(":", 1)[-1]: q["detail"] for q in summary.quarantine}
    assert "prefers nothing" in reasons["3"] and "rejected" in reasons["4"]
    got = {r["doc_id"]: r for r in store.feature_group("kinds").read(columns=["doc_id", "question", "chosen", "rejected"]).to_pylist()}
    assert got["b"]["question"] == "What is a for loop?" and got["a"]["rejected"] == "It stops a loop."
    assert store.feature_group("kinds").info["kind"] == "preferences"


def test_preference_prompts_equal_what_the_agent_builds(home, tmp_path):
    """The contract of tests/test_one_retrieval.py, for preference pairs: the same retrieval, the same encoder."""
    from llmfti.pipelines.inference.online import prepare
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.pipelines.training_dataset import create, recreate
    from llmfti.store import FeatureStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    store = FeatureStore(home)
    rows = [{"id": f"p{i}", "prompt": q, "chosen": "The answer from the contexts [1].", "rejected": "Something else entirely.",
             "event_time": "2024-01-01"} for i, q in enumerate(QUESTIONS)]
    _ingest_prefs(store, write_jsonl(tmp_path / "p.jsonl", rows), "contract-prefs")
    commit = store.feature_group("docs:1").resolve_commit(None)
    ds = create(store, name="contract-prefs", source="contract-prefs", contexts=f"docs:1@{commit}", top_k=2, model="tiny:1",
                hybrid=True, on_demand=["normalized_question"])
    assert ds.kind == "preferences" and recreate(ds)["identical"]
    record = deploy(home, tmp_path, name="contract-p", commit=commit, retrieval={"k": 2, "hybrid": True}, on_demand=["normalized_question"])
    runtime = build_runtime(home, record, RuntimeCache(), ScriptedGenerator(["x"]))
    enc = ds.encoder()
    for ex in ds.examples():
        served = prepare(runtime, {"question": ex["question"]})
        assert [r["chunk_id"] for r in served.rows] == list(ex["context_ids"])
        assert served.encoded.input_ids == list(ex["prompt_ids"]), ex["question"]
        chosen = enc.encode_example(ex["question"], ex["chosen"], served.encoded.contexts_used)
        assert list(ex["chosen_ids"]) == chosen.input_ids[chosen.prompt_length:] and ex["chosen_ids"][-1] == enc.eos_token_id
        assert ex["rejected_ids"][-1] == enc.eos_token_id and enc.tokenizer.decode(ex["rejected_ids"][:-1]) == ex["rejected"]


def test_pairs_from_records_and_a_deployment_keep_the_served_prompt(home, tmp_path):
    from llmfti.errors import ConfigError
    from llmfti.pipelines.inference.online import prepare
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.pipelines.preferences import build_pairs
    from llmfti.pipelines.training_dataset import create
    from llmfti.store import FeatureStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    store = FeatureStore(home)
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()), name="pair-qa")
    record = deploy(home, tmp_path, name="pair-dep", retrieval={"k": 2})
    # The deployment answers every question wrongly, except one it answers with the reference itself.
    same = QA[2][2]
    gen = ScriptedGenerator(lambda req: same if "iterate over" in req.messages[-1]["content"] else "I do not know.")
    summary = build_pairs(store, "pairs", deployment="pair-dep", records="pair-qa", generator_override=gen)
    lin = summary.lineage
    assert summary.committed and lin["pairs"] == len(QA) - 1 and lin["skipped_same_answer"] == 1
    assert lin["source"]["records"]["feature_group"] == "pair-qa:1" and lin["deployment"]["name"] == "pair-dep"
    assert lin["deployment"]["model"] == "tiny:1" and lin["deployment"]["commit"] == store.feature_group("docs").resolve_commit(None)
    pairs = {r["question"]: r for r in store.feature_group("pairs").read(columns=["question", "chosen", "rejected", "context_ids"]).to_pylist()}
    answers = {q: a for _, q, a, _ in QA}
    assert all(p["chosen"] == answers[q] and p["rejected"] == "I do not know." for q, p in pairs.items())
    again = build_pairs(store, "pairs", deployment="pair-dep", records="pair-qa", generator_override=gen)
    assert not again.committed  # the same tuple answers the same: nothing changes
    # Into a records group: refused before any answer is generated, the records untouched (issue 27, finding 2).
    qa = store.feature_group("pair-qa")
    before = (qa.resolve_commit(None), qa.read(columns=["doc_id", "answer"]).to_pylist())
    with pytest.raises(ConfigError, match="holds records, not preferences: nothing was written"):
        build_pairs(store, "pair-qa", deployment="pair-dep", records="pair-qa", generator_override=gen)
    qa = store.feature_group("pair-qa")
    assert (qa.resolve_commit(None), qa.read(columns=["doc_id", "answer"]).to_pylist()) == before

    ds = create(store, name="pairs", source="pairs", contexts="docs:1", top_k=2, model="tiny:1")
    runtime = build_runtime(home, record, RuntimeCache(), gen)
    for ex in ds.examples():
        served = prepare(runtime, {"question": ex["question"]})
        assert list(ex["context_ids"]) == [c.chunk_id for c in served.encoded.contexts_used] == list(pairs[ex["question"]]["context_ids"])
        assert list(ex["prompt_ids"]) == served.encoded.input_ids  # the prompt that produced the rejected answer


def test_pairs_need_one_source_and_the_cli_runs_the_real_tiny_model(home, tmp_path):
    from typer.testing import CliRunner

    from llmfti.cli import app
    from llmfti.errors import ConfigError
    from llmfti.pipelines.preferences import build_pairs
    from llmfti.store import FeatureStore

    store = FeatureStore(home)
    with pytest.raises(ConfigError, match="exactly one source"):
        build_pairs(store, "x", deployment="docs-qa")
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()), name="cli-qa")
    deploy(home, tmp_path, name="cli-dep")
    res = CliRunner().invoke(app, ["--home", str(home), "records", "preferences", "--into", "cli-prefs", "--from-records", "cli-qa",
                                   "--deployment", "cli-dep", "--max-pairs", "2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["lineage"]["questions"] == 2 and out["lineage"]["pairs"] + out["lineage"]["skipped_same_answer"] + out["lineage"]["failed"] == 2
    assert FeatureStore(home).feature_group("cli-prefs").info["kind"] == "preferences"


def test_pairs_from_two_deployments_ranked_by_a_judge_in_both_orders(home, tmp_path):
    from llmfti.errors import ConfigError
    from llmfti.pipelines.preferences import build_pairs
    from llmfti.store import FeatureStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    store = FeatureStore(home)
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()), name="judge-qa")
    deploy(home, tmp_path, name="judge-a")
    deploy(home, tmp_path, name="judge-b")
    good = ScriptedGenerator(["A grounded answer [1]."])
    bad = ScriptedGenerator(["Nonsense."])
    asked = []

    def fair(messages):  # prefers the grounded answer wherever it stands
        asked.append(messages[-1]["content"])
        return "1" if "Answer 1: A grounded" in messages[-1]["content"] else "2"

    summary = build_pairs(store, "judged", deployment="judge-b", versus="judge-a", records="judge-qa", judge=fair,
                          generator_override=bad, versus_generator_override=good)
    lin = summary.lineage
    assert lin["pairs"] == len(QA) and lin["versus"]["name"] == "judge-a" and lin["chosen"] == "the judge's preferred answer"
    assert len(asked) == 2 * len(QA)  # each question judged in both orders
    rows = store.feature_group("judged").read(columns=["chosen", "rejected"]).to_pylist()
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("A grounded answer [1].", "Nonsense.")}
    with pytest.raises(ConfigError, match="undecided"):  # a judge that always says "1" has no preference
        build_pairs(store, "biased", deployment="judge-b", versus="judge-a", records="judge-qa", judge=lambda m: "1",
                    generator_override=bad, versus_generator_override=good)
    with pytest.raises(ConfigError, match="needs a judge"):
        build_pairs(store, "nojudge", deployment="judge-b", versus="judge-a", records="judge-qa")
