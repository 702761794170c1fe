"""Regression tests for fixes that earlier commits claimed without a test: concurrent first ingests,
a failed inference-log flush retried, and the deployments listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from conftest import write

INGEST = textwrap.dedent(
    """
    import json, sys
    from llmfti.config import FeatureConfig
    from llmfti.errors import LlmftiError
    from llmfti.pipelines.feature import ingest
    cfg = FeatureConfig(embedder={"model": sys.argv[3]}, chunker={"chunk_tokens": 24, "overlap": 4})
    try:
        s = ingest("docs", [sys.argv[2]], home=sys.argv[1], config=cfg)
        print(json.dumps({"ok": True, "committed": s.committed}))
    except LlmftiError as exc:
        print(json.dumps({"ok": False, "type": type(exc).__name__}))
    """
)


@pytest.mark.integration
@pytest.mark.parametrize("embedders", [("hash-64", "hash-64"), ("hash-64", "hash-32")], ids=["same-config", "conflicting-config"])
def test_concurrent_first_ingests_leave_one_consistent_group(tmp_path, embedders):
    from llmfti.store import FeatureStore

    corpus = tmp_path / "corpus"
    for i in range(12):
        write(corpus / f"d{i}.md", f"# Doc {i}\n\n" + " ".join(f"word{j} of document {i}." for j in range(40)))
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, str(script), str(home), str(corpus), e], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) for e in embedders]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    fs = FeatureStore(home)
    assert fs.versions("docs") == [1]  # one metadata row, whoever won
    winner = fs.feature_group("docs:1")
    rows = winner.read(columns=["chunk_id", "doc_id"]).to_pylist()
    assert len({r["doc_id"] for r in rows}) == 12 and len(rows) == len({r["chunk_id"] for r in rows})  # nothing duplicated
    if embedders[0] == embedders[1]:
        assert all(r["ok"] for r in results)
    else:  # the loser's embedder does not match the group the winner created: refused, nothing mixed in
        assert sorted(r["ok"] for r in results) == [False, True]
        assert [r["type"] for r in results if not r["ok"]] == ["IncompatibleError"]
        assert winner.info["embedder_id"] in embedders


def test_a_failed_log_flush_is_retried_without_loss_or_duplicates(tmp_path, monkeypatch):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog
    from llmfti.tables import SystemTable

    log = InferenceLog(FeatureStore(tmp_path / "home"))
    log.append({"request_id": "r1", "deployment": "d", "status": "ok"})
    real = SystemTable.insert_new
    calls = {"n": 0}

    def flaky(self, items, key):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full (simulated)")
        return real(self, items, key)

    monkeypatch.setattr(SystemTable, "insert_new", flaky)
    with pytest.raises(OSError):
        log.flush()
    assert list(log.dir.iterdir()), "the segment must stay on disk after a failed flush"
    log.append({"request_id": "r2", "deployment": "d", "status": "ok"})
    assert log.flush() == 2
    log.close()
    rows = InferenceLog(FeatureStore(tmp_path / "home")).query("d", limit=None)
    assert sorted(r["request_id"] for r in rows) == ["r1", "r2"]


def test_get_deployments_lists_each_active_tuple_and_its_request_schema(agent_home, tmp_path):  # noqa: F811
    from llmfti.agents.app import create_app
    from llmfti.testing.scripted_generator import ScriptedGenerator

    deploy(agent_home, tmp_path, name="listed", force=True, request_schema={"fields": {
        "question": {"type": "string", "required": True}, "locale": {"type": "string", "enum": ["en", "fr"]}}})
    app = create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["ok"]))
    with TestClient(app) as client:
        body = client.get("/v1/deployments").json()
    listed = {d["name"]: d for d in body["deployments"]}["listed"]
    assert listed["model"] == "tiny:1" and listed["feature_group"] == "docs:1" and len(listed["prompt_fingerprint"]) == 64
    assert '"enum": ["en", "fr"]' in json.dumps(listed["request_schema"]["properties"]["locale"])
    assert "question" in listed["request_schema"]["required"]


def _chunk_rows_of_four_documents(tmp_path):
    """(store, a feature group holding 4 small documents, its rows): rows a racing run would commit."""
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.feature import ingest
    from llmfti.store import FeatureStore

    for i in range(4):
        write(tmp_path / "src" / f"d{i}.md", f"# Doc {i}\n\nWords of document {i}.\n")
    store = FeatureStore(tmp_path / "home")
    source = store.feature_group("source", must_exist=False)
    ingest(source, [str(tmp_path / "src")], config=FeatureConfig(embedder={"model": "hash-16"}))
    return store, source, source.read().to_pylist()


@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_a_run_that_loses_the_race_to_create_the_table_waits_for_the_winners_first_commit(tmp_path, monkeypatch, error):
    """Two first ingests at once: the loser's create_table says "already exists" while the winner's
    first commit has not landed yet, so opening the table fails for a moment. The loser used to fail
    with "has no data yet" (1 in ~20 concurrent runs); it now waits for the commit and merges into it."""
    import threading

    from llmfti.pipelines.feature_commit import commit_rows

    store, source, rows = _chunk_rows_of_four_documents(tmp_path)
    winner_rows, loser_rows = rows[:2], rows[2:]

    fg = store.feature_group("docs", must_exist=False)
    db = fg.store.db
    real_create = db.create_table
    creator = threading.Timer(0.3, lambda: real_create(fg.table_name, data=winner_rows, schema=source.table().schema))

    def lose_the_race(name, *args, **kwargs):
        creator.start()  # the winner's commit lands a moment later
        # lancedb's own error, or the RuntimeError it wraps it in when the check fires inside its data reader
        raise error(f"Table '{name}' already exists")

    monkeypatch.setattr(db, "create_table", lose_the_race)
    assert commit_rows(fg, loser_rows, [], "documents", 16)
    creator.join()
    assert sorted(r["chunk_id"] for r in fg.read().to_pylist()) == sorted(r["chunk_id"] for r in rows)


def test_a_run_that_sees_the_winners_folder_before_its_commit_waits_for_it(tmp_path, monkeypatch):
    """The same race from the other side: has_data() already lists the winner's table folder, whose
    first commit has not landed, so opening it fails for a moment."""
    import threading

    from llmfti.pipelines.feature_commit import commit_rows

    store, source, rows = _chunk_rows_of_four_documents(tmp_path)
    fg = store.feature_group("docs", must_exist=False)
    monkeypatch.setattr(fg, "has_data", lambda: True)
    creator = threading.Timer(0.3, lambda: fg.store.db.create_table(fg.table_name, data=rows[:2], schema=source.table().schema))
    creator.start()
    assert commit_rows(fg, rows[2:], [], "documents", 16)
    creator.join()
    assert len(fg.read().to_pylist()) == len(rows)
