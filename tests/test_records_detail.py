"""The `detail` synthesis method (questions about one sentence of a chunk), what synthesizing into an
existing group means (append by default, `--replace`, other kinds refused with nothing written), and
training datasets that place a record's own context where retrieval ranks it (citations renumbered)."""

from __future__ import annotations

import pytest

from conftest import write
from td_fixtures import import_tiny, ingest_docs, tiny_chat_model

DOCS = {
    "loops.md": "# The for statement\n\nThe for statement is used to iterate over the elements of a sequence. "
                "If the sequence is empty, the loop body never runs. The loop variable is not deleted when the loop ends.\n",
    "raise.md": "# The raise statement\n\nThe raise statement raises an exception. "
                "When no expression is given, raise re-raises the exception that is currently being handled.\n",
}


@pytest.fixture
def docs(store, hash_config, tmp_path):
    for name, text in DOCS.items():
        write(tmp_path / "corpus" / name, text)
    ingest_docs(store, tmp_path / "corpus", hash_config)
    return store.feature_group("docs")


def test_detail_questions_are_answered_by_their_sentence():
    from llmfti.transforms.synthesis import detail_question

    assert detail_question("If the sequence is empty, the loop body never runs.") == (
        "What happens if the sequence is empty?", "If the sequence is empty, the loop body never runs.")
    assert detail_question("The raise statement raises an exception when it is given one.")[0] == "What does the raise statement raise?"
    q, a = detail_question("The loop variable is not deleted when the loop ends.")
    assert q == "Is the loop variable deleted when the loop ends?" and a.startswith("No, the loop variable is not deleted")
    assert detail_question("Finally, the type is shown.") is None  # no subject at the start
    assert detail_question("This is what it does.") is None  # a pronoun subject needs the sentence before


def test_detail_method_writes_records_from_inner_sentences(docs, store):
    from llmfti.pipelines.records import synthesize

    summary = synthesize(store, "docs", "qa", method="detail", pairs_per_chunk=3)
    rows = store.feature_group("qa").read(columns=["question", "answer"]).to_pylist()
    questions = {r["question"] for r in rows}
    assert summary.lineage["method"] == "detail"
    assert "What happens if the sequence is empty?" in questions  # not the chunk's first sentence
    assert all(r["answer"].endswith("[1]") for r in rows)


def test_synthesize_appends_and_replace_keeps_only_this_run(docs, store):
    from llmfti.pipelines.records import synthesize

    synthesize(store, "docs", "qa", method="structure")
    first = {r["doc_id"] for r in store.feature_group("qa").read(columns=["doc_id"]).to_pylist()}
    synthesize(store, "docs", "qa", method="detail")
    both = {r["doc_id"] for r in store.feature_group("qa").read(columns=["doc_id"]).to_pylist()}
    assert first < both  # the detail run added its records; the structure run's are still there
    synthesize(store, "docs", "qa", method="detail", replace=True)
    only = {r["doc_id"] for r in store.feature_group("qa").read(columns=["doc_id"]).to_pylist()}
    assert only == both - first


def test_synthesize_into_a_documents_group_is_refused_and_writes_nothing(docs, store, home):
    import subprocess
    import sys

    before = (docs.resolve_commit(None), docs.table().count_rows())
    res = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "records", "synthesize", "docs", "--into", "docs", "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "holds documents, not records" in res.stdout
    after = store.feature_group("docs")
    assert (after.resolve_commit(None), after.table().count_rows()) == before


def test_retrieval_order_places_the_answering_context_where_retrieval_ranks_it(docs, store, home, tmp_path):
    from llmfti.pipelines.training_dataset import create, recreate
    from llmfti.pipelines.training_dataset.build import renumber_citations

    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    for method in ("structure", "detail"):
        from llmfti.pipelines.records import synthesize

        synthesize(store, "docs", "qa", method=method, pairs_per_chunk=3)
    records = {r["doc_id"]: r for r in store.feature_group("qa").read(columns=["doc_id", "context_ids", "answer"]).to_pylist()}
    given = create(store, name="given", source="qa", contexts="docs", top_k=2, model="tiny", context_order="given-first")
    placed = create(store, name="placed", source="qa", contexts="docs", top_k=2, model="tiny")
    assert placed.describe()["retrieval"]["context_order"] == "retrieval"
    positions = []
    for row in placed.examples(columns=["doc_id", "context_ids", "answer"]):
        own = records[row["doc_id"]]["context_ids"][0]
        assert own in row["context_ids"] and len(row["context_ids"]) == 2  # the answering context is always in the prompt
        n = row["context_ids"].index(own) + 1
        positions.append(n)
        assert row["answer"].endswith(f"[{n}]")  # and the answer cites it where it stands
    assert all(r["context_ids"][0] == records[r["doc_id"]]["context_ids"][0] for r in given.examples(columns=["doc_id", "context_ids"]))
    assert recreate(placed)["identical"] and recreate(given)["identical"]  # both orders rebuild from their lineage
    assert renumber_citations("A [1], B [2].", ["a", "b"], ["x", "b", "a"]) == "A [3], B [2]."


class _Ranked:
    """A context source whose retrieval returns a fixed ranking."""

    def __init__(self, ranking):
        self.ranking = ranking

    def retrieve(self, question, k, **_):
        return [{"chunk_id": c, "text": c, "score": 1.0 / (i + 1), "source": c} for i, c in enumerate(self.ranking[:k])]


def test_retrieval_order_keeps_retrievals_rank_and_places_a_missed_context_by_seed():
    from llmfti.pipelines.training_dataset.build import contexts_for

    given = {"own": [{"chunk_id": "own", "text": "own", "source": "own"}]}
    rec = {"doc_id": "r1", "question": "q", "context_ids": ["own"]}
    ranked = contexts_for(rec, _Ranked(["a", "own", "b", "c"]), given, 3, set(), order="retrieval")
    assert [c.chunk_id for c in ranked] == ["a", "own", "b"]  # where retrieval put it
    missed = [[c.chunk_id for c in contexts_for({**rec, "doc_id": f"r{i}"}, _Ranked(["a", "b", "c", "d"]), given, 3, set(), order="retrieval")]
              for i in range(12)]
    assert all(len(m) == 3 and "own" in m and m[:2] != ["b", "c"] for m in missed)  # the best retrieved stay, the worst makes room
    assert {m.index("own") for m in missed} == {0, 1, 2}  # a seeded place, not always first
    again = contexts_for({**rec, "doc_id": "r3"}, _Ranked(["a", "b", "c", "d"]), given, 3, set(), order="retrieval")
    assert [c.chunk_id for c in again] == missed[3]  # deterministic
    first = contexts_for(rec, _Ranked(["a", "own", "b"]), given, 3, set(), order="given-first")
    assert [c.chunk_id for c in first] == ["own", "a", "b"]


def test_no_cite_writes_answers_without_their_citation(docs, store):
    from llmfti.pipelines.records import synthesize

    summary = synthesize(store, "docs", "qa", method="detail", cite=False)
    answers = [r["answer"] for r in store.feature_group("qa").read(columns=["answer"]).to_pylist()]
    assert answers and not any(a.rstrip().endswith("]") for a in answers)
    assert summary.lineage["parameters"]["cite"] is False
