"""Scores of instruction records: each built-in scorer on its own, `records score` writing score columns
as one commit with the scorers' versions recorded, later ingests scoring their new records the same
way, eval-suite near-duplicates flagged, and `td create --where` filtering on scores, recorded in the
dataset's lineage and applied again by `recreate`."""

from __future__ import annotations

import json

import pytest

from conftest import write
from td_fixtures import QA, import_tiny, ingest_docs, ingest_records, qa_rows, tiny_chat_model, write_jsonl


def _inputs(*items):
    from llmfti.transforms.scoring import ScoreInput

    return [ScoreInput(f"r{i}", q, a, c, (i, f"r{i}")) for i, (q, a, c) in enumerate(items)]


def _score(name, targets, group=None, params=None, env=None):
    from llmfti.transforms.scoring import build_scorers, score_records

    scorers = build_scorers([{"name": name, "params": params or {}}], env)
    return score_records(scorers, targets, group or targets)[f"score_{name}"]


def test_length_counts_answer_words():
    assert _score("length", _inputs(("q?", "one two three [1].", None), ("q?", "", None))) == [4.0, 0.0]


def test_language_separates_english_prose_from_other_text():
    scores = _score("language", _inputs(
        ("What does a for loop iterate over?", "It iterates over the items of an iterable [1].", None),
        ("for 循环 遍历 什么?", "它遍历可迭代对象的元素。", None),
        ("{{}} ;; ##", "0x1f 0x2e == != <<>> 42", None),
    ))
    assert scores == [1.0, 0.0, 0.3333]


def test_grounding_is_the_monitoring_rule_and_null_without_contexts():
    from llmfti.monitoring.grounding import STOP_WORDS, grounding_score
    from llmfti.transforms.scoring import _STOP

    assert _STOP == STOP_WORDS  # one lexical rule for training records and served answers
    ctx = ["Generators yield values lazily and keep their state between calls."]
    items = [("q?", "Generators yield values lazily [1].", ctx), ("q?", "Decorators wrap functions at definition time.", ctx),
             ("q?", "Generators keep state.", None)]
    scores = _score("grounding", _inputs(*items))
    assert scores[:2] == [grounding_score(a, c) for _, a, c in items[:2]] and scores[0] == 1.0 and scores[1] == 0.0
    assert scores[2] is None


def test_near_duplicate_scores_only_against_earlier_records():
    q, a = "What does the with statement do?", "It wraps a block with a context manager [1]."
    targets = _inputs((q, a, None), ("What do generators do?", "They yield values lazily [1].", None), (q.replace("?", " ?"), a.rstrip("."), None))
    scores = _score("near_duplicate", targets)
    assert scores[0] == 0.0 and scores[1] == 0.0  # the first of a group keeps 0: a filter keeps it
    assert scores[2] >= 0.8  # a near-copy of an earlier record


def test_eval_question_scores_agree_with_the_leak_guard(tmp_path):
    from llmfti.evaluation.leakage import LeakGuard, normalize as guard_normalize
    from llmfti.evaluation.suites import load_suite
    from llmfti.transforms.scoring import EVAL_QUESTION_FLAG, ScoringEnv, normalize

    suite = _suite(tmp_path)
    env = ScoringEnv(suites={"held-out": (load_suite(suite).ref, [c.question for c in load_suite(suite).cases])})
    questions = ["What does the with statement do?", "what does the `with` statement do", "When does a while loop repeat?"]
    scores = _score("eval_question", _inputs(*[(q, "x", None) for q in questions]), params={"suites": ["held-out"]}, env=env)
    guard = LeakGuard([load_suite(suite)])
    assert [s >= EVAL_QUESTION_FLAG for s in scores] == [guard.same_question(q) for q in questions] == [True, True, False]
    assert all(normalize(q) == guard_normalize(q) for q in questions)


def test_judge_scores_from_a_judge_reply_and_null_without_a_rating():
    from llmfti.transforms.scoring import ScoringEnv

    seen = []

    def chat(messages):
        seen.append(messages)
        return "Rating: 5" if "context manager" in messages[-1]["content"] else "I cannot tell."

    env = ScoringEnv(chat=chat)
    scores = _score("judge", _inputs(("What does with do?", "It uses a context manager.", ["The with statement ..."]), ("q?", "no", None)), env=env)
    assert scores == [1.0, None] and "The with statement" in seen[0][-1]["content"]


def test_unknown_scorer_and_registration_like_chunkers():
    from llmfti.errors import ConfigError
    from llmfti.transforms.scoring import build_scorers, register_scorer, score_records

    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        build_scorers([{"name": "nope"}])

    @register_scorer("question_marks")
    class QuestionMarks:
        version, uses_group, uses_contexts = "2", False, False

        def __init__(self, params, env):
            self.params = params

        def score(self, targets, group):
            return [float(t.question.count("?")) for t in targets]

    scorers = build_scorers([{"name": "question_marks"}])
    assert score_records(scorers, _inputs(("a??", "b", None)), [])["score_question_marks"] == [2.0]


# -- in the store ---------------------------------------------------------------------------------


def _suite(tmp_path):
    suite = tmp_path / "evals" / "held-out"
    write(suite / "cases.jsonl", json.dumps({"id": "w", "question": "What does the with statement do?", "reference": "It wraps a block.",
                                             "source_ids": ["with.md"]}) + "\n")
    write(suite / "gate.yaml", "thresholds:\n  hit_at_k: 0.5\n")
    return suite


@pytest.fixture
def scored(store, tmp_path, hash_config, corpus):
    docs = ingest_docs(store, corpus, hash_config)
    chunk = docs.read(columns=["chunk_id", "doc_id"], where="doc_id = 'with.md'").to_pylist()[0]["chunk_id"]
    rows = qa_rows(**{"q-with": {"context_ids": [chunk]}, "q-gen": {"context_ids": [chunk]}})
    rows.append({"id": "q-with-again", "question": "What does the with statement do ?", "answer": "It wraps a block with a context manager [1]",
                 "event_time": "2024-03-01"})
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", rows))
    return rows


def test_records_score_is_one_commit_with_versions_and_new_records_are_scored_alike(store, tmp_path, scored):
    from llmfti.pipelines.records import score
    from llmfti.transforms.scoring import scoring_state

    fg = store.feature_group("qa")
    before = fg.table().version
    out = score(store, "qa", ["length", "near_duplicate", {"name": "grounding"}], contexts="docs")
    assert out["committed"] and out["data_commit"] == before + 1  # ONE commit holds the new columns and their values
    rows = {r["doc_id"]: r for r in fg.read(columns=["doc_id", "score_length", "score_near_duplicate", "score_grounding"]).to_pylist()}
    assert rows["q-for"]["score_length"] == 3.0 and rows["q-with"]["score_grounding"] == 1.0 and rows["q-for"]["score_grounding"] is None
    assert rows["q-with-again"]["score_near_duplicate"] >= 0.8 and rows["q-with"]["score_near_duplicate"] == 0.0
    assert out["scoring"]["flags"]["near_duplicate"]["records"] == ["q-with-again"]
    state = scoring_state(store.runs("qa:1"))
    assert state["score_length"]["version"] == "1" and state["score_grounding"]["inputs"]["contexts"].startswith("docs:1@")
    assert [h["change"] for h in fg.history()][-1] == "data"

    # a later ingest scores its new record with the same scorers, in its own single commit
    grown = scored + [{"id": "q-late", "question": "What does the with statement do?", "answer": "It wraps a block [1].", "event_time": "2024-04-01"}]
    _, summary = ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", grown))
    assert summary.committed and set(summary.scoring["columns"]) == {"score_length", "score_near_duplicate", "score_grounding"}
    late = fg.read(columns=["doc_id", "score_length", "score_near_duplicate"], where="doc_id = 'q-late'").to_pylist()[0]
    assert late["score_length"] == 5.0 and late["score_near_duplicate"] > 0.5

    # scoring again with the same scorers changes nothing: no commit
    assert not score(store, "qa", ["length"])["committed"]


def test_scorers_in_the_config_score_at_ingest_and_a_new_one_needs_a_scoring_run(store, tmp_path):
    from llmfti.config import FeatureConfig
    from llmfti.errors import ConfigError
    from llmfti.pipelines.feature import ingest

    path = write_jsonl(tmp_path / "qa.jsonl", qa_rows())
    cfg = FeatureConfig(kind="records", embedder={"model": "hash-64"}, scorers=["length", {"name": "language"}])
    summary = ingest(store.feature_group("qa", must_exist=False), [str(path)], config=cfg)
    assert summary.committed and set(summary.scoring["columns"]) == {"score_length", "score_language"}
    assert {r["score_length"] for r in store.feature_group("qa").read(columns=["score_length"]).to_pylist()} == {3.0, 4.0, 5.0, 9.0}
    with pytest.raises(ConfigError, match=r"no score column for \['near_duplicate'\]"):
        ingest(store.feature_group("qa"), [str(write_jsonl(tmp_path / "more.jsonl", qa_rows()[:1] + [{"id": "n", "question": "q?", "answer": "a"}]))],
               config=cfg.model_copy(update={"scorers": cfg.scorers + [cfg.scorers[0].model_copy(update={"name": "near_duplicate"})]}))
    with pytest.raises(ValueError, match="records"):
        FeatureConfig(kind="documents", scorers=["length"])


def test_eval_question_flags_and_the_where_filter_keeps_them_out(store, home, tmp_path, scored, monkeypatch):
    from llmfti.pipelines.records import score
    from llmfti.pipelines.training_dataset import create, recreate

    _suite(tmp_path)
    monkeypatch.chdir(tmp_path)  # suites are looked up under ./evals
    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    out = score(store, "qa", [{"name": "eval_question", "params": {"suites": ["held-out"]}}])
    flags = out["scoring"]["flags"]["eval_question"]
    assert sorted(flags["records"]) == ["q-with", "q-with-again"] and out["scoring"]["columns"]["score_eval_question"]["params"]["suites"][0].startswith("held-out@")

    leaky = create(store, name="all", source="qa", model="tiny", eval_suites=["held-out"])
    assert list(leaky.describe()["eval_overlap"].values())[0]["questions"] == 2
    clean = create(store, name="clean", source="qa", model="tiny", eval_suites=["held-out"], where="score_eval_question < 0.9")
    d = clean.describe()
    assert list(d["eval_overlap"].values())[0]["questions"] == 0 and d["rows"]["excluded_by_filter"] == 2
    assert d["filter"]["where"] == "score_eval_question < 0.9"
    assert d["filter"]["scores"]["score_eval_question"]["scorer"] == "eval_question" and d["filter"]["scores"]["score_eval_question"]["version"] == "1"
    assert {r["doc_id"] for r in clean.examples()} == {i for i, *_ in QA} - {"q-with"}
    rep = recreate(clean)  # the filter comes back from the lineage: without it the rebuild would hold 2 more examples
    assert rep["identical"] and rep["recreated_rows"] == len(QA) - 1


def test_td_create_where_errors_and_cli(store, home, tmp_path, scored):
    from typer.testing import CliRunner

    from llmfti.cli import app

    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    runner = CliRunner()
    res = runner.invoke(app, ["--home", str(home), "records", "score", "qa", "--scorer", "length", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["scoring"]["columns"]["score_length"]["version"] == "1"
    ok = runner.invoke(app, ["--home", str(home), "td", "create", "long", "--from", "qa", "--model", "tiny", "--where", "score_length >= 5", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["filter"]["where"] == "score_length >= 5" and json.loads(ok.stdout)["rows"]["total"] == 5
    bad = runner.invoke(app, ["--home", str(home), "td", "create", "bad", "--from", "qa", "--model", "tiny", "--where", "score_nope > 1", "--json"])
    from llmfti.errors import ConfigError

    assert isinstance(bad.exception, ConfigError) and bad.exception.exit_code == 2 and "score_nope" in str(bad.exception)
