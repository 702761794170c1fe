"""Records synthesis: instruction data from a documents feature group at a pinned commit, with lineage
through `fg show`, `td show` and the model card; eval-suite documents and passages never leak in;
`td create` reports (and with a flag refuses) overlap with an eval suite; the teacher method against
a scripted OpenAI-compatible server on loopback (bounded concurrency, retries, failures quarantined)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import write
from td_fixtures import import_tiny, ingest_docs, tiny_chat_model

DOCS = {
    "with.md": "# The with statement\n\nThe with statement wraps the execution of a block with methods defined by a context manager. "
               "It makes try/finally patterns easy to reuse.\n",
    "loops.md": "# The for statement\n\nThe for statement is used to iterate over the elements of a sequence or other iterable object. "
                "The loop body runs once per item.\n\n# The while statement\n\nThe while statement is used for repeated execution as long "
                "as an expression is true.\n",
    "gen.md": "# Generators\n\nGenerators are functions that yield values lazily, one at a time, and keep their state between calls.\n\n"
              "object.__iter__(self)\n\n   This method is called when an iterator is required for a container object.\n",
}


@pytest.fixture
def project(home, store, hash_config, tmp_path):
    for name, text in DOCS.items():
        write(tmp_path / "corpus" / name, text)
    ingest_docs(store, tmp_path / "corpus", hash_config)
    suite = tmp_path / "evals" / "held-out"
    write(suite / "cases.jsonl", json.dumps({"id": "w", "question": "What does the with statement do?",
                                             "reference": "It wraps a block with a context manager.",
                                             "reference_contexts": ["The with statement wraps the execution of a block with methods defined by a context manager"],
                                             "source_ids": ["with.md"]}) + "\n")
    write(suite / "gate.yaml", "thresholds:\n  hit_at_k: 0.5\n")
    return tmp_path


def test_structure_records_with_lineage_and_no_eval_leak(project, store):
    from llmfti.pipelines.records import synthesize

    summary = synthesize(store, "docs", "qa", method="structure", exclude_suites=[str(project / "evals" / "held-out")])
    assert summary.committed and summary.lineage["method"] == "structure"
    records = store.feature_group("qa").read(columns=["question", "answer", "context_ids", "source"]).to_pylist()
    questions = {r["question"] for r in records}
    assert "What does the for statement do?" in questions and "What does object.__iter__() do?" in questions
    assert not any("with statement" in q for q in questions)  # the suite's document never reached training data
    chunks = {r["chunk_id"]: r for r in store.feature_group("docs").read(columns=["chunk_id", "doc_id", "text"]).to_pylist()}
    for r in records:
        assert r["answer"].endswith("[1]") and r["context_ids"] and all(c in chunks for c in r["context_ids"])
        assert chunks[r["context_ids"][0]]["doc_id"] != "with.md"
    lin = store.feature_group("qa").describe()["lineage"]
    assert lin["documents"] == {"feature_group": "docs:1", "commit": store.feature_group("docs").resolve_commit(None), "as_of": None}
    assert lin["excluded"]["documents"] == 1 and lin["excluded"]["suites"][0].startswith("held-out@")
    again = synthesize(store, "docs", "qa", method="structure", exclude_suites=[str(project / "evals" / "held-out")])
    assert not again.committed  # the same commit synthesizes the same records: nothing changes


def test_td_reports_and_refuses_eval_overlap_and_carries_records_lineage(project, store, home, tmp_path, monkeypatch):
    from llmfti.errors import IncompatibleError
    from llmfti.pipelines.records import synthesize
    from llmfti.pipelines.training_dataset import create

    monkeypatch.chdir(project)  # suites are looked up under ./evals
    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    synthesize(store, "docs", "clean-qa", method="structure", exclude_suites=["held-out"])
    clean = create(store, name="clean", source="clean-qa", contexts="docs", top_k=1, model="tiny", eval_suites=["held-out"], refuse_eval_overlap=True)
    d = clean.describe()
    assert list(d["eval_overlap"].values())[0]["examples"] == []
    assert d["records_lineage"]["method"] == "structure" and d["records_lineage"]["documents"]["feature_group"] == "docs:1"
    synthesize(store, "docs", "leaky-qa")  # no exclusion: the with.md pairs are in
    leaky = create(store, name="leaky", source="leaky-qa", contexts="docs", top_k=1, model="tiny", eval_suites=["held-out"])
    overlap = list(leaky.describe()["eval_overlap"].values())[0]
    assert overlap["passages"] >= 1 and overlap["examples"]
    with pytest.raises(IncompatibleError, match="overlap eval suites"):
        create(store, name="leaky", source="leaky-qa", contexts="docs", top_k=1, model="tiny", eval_suites=["held-out"], refuse_eval_overlap=True)
    assert [ds.ref for ds in store.training_datasets.list() if ds.name == "leaky"] == ["leaky:1"]  # the refused one was not written


class _Teacher(BaseHTTPRequestHandler):
    """A scripted OpenAI-compatible teacher: the first request fails with 500 (retried), a passage about
    'while' gets an unusable reply (quarantined), the rest get one JSON pair. Records concurrency."""

    state = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "lock": threading.Lock()}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        st = self.state
        with st["lock"]:
            st["requests"] += 1
            n = st["requests"]
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        time.sleep(0.05)
        passage = body["messages"][-1]["content"]
        with st["lock"]:
            st["in_flight"] -= 1
        if n == 1:
            self.send_response(500)
            self.end_headers()
            return
        content = "sorry, no JSON" if "while statement" in passage else json.dumps(
            [{"question": f"What is said about {passage.split('Passage:')[1].split()[0].strip('#')}?", "answer": "What the passage says."}])
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_teacher_method_bounded_concurrency_retries_and_failures(project, store):
    from llmfti.pipelines.records import TeacherSettings, synthesize

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        summary = synthesize(store, "docs", "taught", method="teacher", teacher=TeacherSettings(url, "big-teacher", concurrency=2))
    finally:
        server.shutdown()
    st = _Teacher.state
    n_chunks = len(store.feature_group("docs").read(columns=["chunk_id"]))
    assert st["requests"] == n_chunks + 1  # every chunk asked once, plus the retried 500
    assert 1 <= st["max_in_flight"] <= 2
    assert summary.documents["quarantined"] == 1 and summary.quarantine[0]["reason"] == "teacher-failed"
    assert summary.lineage["parameters"]["teacher_model"] == "big-teacher"
    rows = store.feature_group("taught").read(columns=["question", "answer"]).to_pylist()
    assert len(rows) == n_chunks - 1 and all(r["answer"].endswith("[1]") for r in rows)


def test_structure_pairs_cover_headings_definitions_and_api_entries():
    from llmfti.transforms.synthesis import structure_pairs

    pairs = structure_pairs("Sequence Types > Tuples", "Tuples are immutable sequences, typically used to store collections of "
                            "heterogeneous data. They support indexing.\n", 3)
    assert ("What are tuples?", "Tuples are immutable sequences, typically used to store collections of heterogeneous data. They support indexing. [1]") in pairs
    assert structure_pairs("Grammar", "with_stmt ::= \"with\" target\n", 2) == []  # grammar is not prose
    assert structure_pairs("X > Y", "Some continued text that is long enough to count as prose here.\n", 2, section_start=False) == []


def test_cli_records_synthesize_json(project, home):
    from typer.testing import CliRunner

    from llmfti.cli import app

    res = CliRunner().invoke(app, ["--home", str(home), "records", "synthesize", "docs", "--into", "cli-qa", "--max-records", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["lineage"]["records"] == 2 and doc["committed"]
    show = CliRunner().invoke(app, ["--home", str(home), "fg", "show", "cli-qa"])
    assert "lineage: records-synthesis (detail, seed 0) from docs:1" in show.stdout
