"""Feature pipeline: incremental ingest, one commit per run, refusals, quarantine, sync."""

import time

import pytest

from conftest import write
from llmfti.config import FeatureConfig
from llmfti.errors import IncompatibleError
from llmfti.pipelines.feature import ingest as run_ingest


def ingest(store, corpus, cfg=None, **kw):
    fg = store.feature_group("docs", must_exist=False)
    return fg, run_ingest(fg, [str(corpus)], config=cfg, **kw)


def chunk_ids(fg, as_of=None):
    return sorted(fg.read(as_of, columns=["chunk_id"]).column("chunk_id").to_pylist())


def test_first_ingest_writes_rows_with_times_and_metadata(store, corpus, hash_config):
    fg, s = ingest(store, corpus, hash_config)
    assert s.committed and s.documents["added"] == 3 and s.documents["quarantined"] == 0
    rows = fg.read().to_pylist()
    assert len(rows) == s.chunks_written
    loops = [r for r in rows if r["doc_id"] == "loops.md"][0]
    assert loops["event_time"].year == 2024  # from front matter
    assert '"author": "guido"' in loops["metadata"]
    assert all(r["ingested_at"] is not None and len(r["vector"]) == 64 for r in rows)
    assert len({r["chunk_id"] for r in rows}) == len(rows)
    info = fg.describe()
    assert info["embedder"]["id"] == "hash-64" and info["chunker"]["chunk_tokens"] == 40
    assert info["rows"] == len(rows)


def test_unchanged_run_makes_no_commit_and_embeds_nothing(store, corpus, hash_config):
    fg, first = ingest(store, corpus, hash_config)
    versions = len(fg.versions_log())

    class CountingEmbedder(type(fg.embedder())):
        calls = 0

        def _encode(self, texts):
            CountingEmbedder.calls += len(texts)
            return super()._encode(texts)

    again = run_ingest(fg, [str(corpus)], embedder=CountingEmbedder(64))
    assert not again.committed and again.documents["unchanged"] == 3
    assert CountingEmbedder.calls == 0
    assert len(fg.versions_log()) == versions and again.commit == first.commit


def test_touching_a_file_does_not_reingest(store, corpus, hash_config):
    fg, _ = ingest(store, corpus, hash_config)
    (corpus / "with.md").touch()
    assert not run_ingest(fg, [str(corpus)]).committed


def test_changed_document_replaces_its_chunks_in_one_commit(store, corpus, hash_config):
    fg, first = ingest(store, corpus, hash_config)
    before = {r["chunk_id"]: r["doc_id"] for r in fg.read().to_pylist()}
    write(corpus / "sub" / "gen.txt", "Generators now say something entirely different about coroutines.\n")
    data_versions = len(fg.versions_log())
    s = run_ingest(fg, [str(corpus)])
    assert s.committed and s.documents["updated"] == 1 and s.documents["unchanged"] == 2
    assert s.data_commit == data_versions + 1  # the data change is exactly one new version
    after = fg.read().to_pylist()
    gen_rows = [r for r in after if r["doc_id"] == "sub/gen.txt"]
    assert len(gen_rows) == 1 and "coroutines" in gen_rows[0]["text"]
    assert {r["chunk_id"] for r in after if r["doc_id"] != "sub/gen.txt"} == {c for c, d in before.items() if d != "sub/gen.txt"}
    # the old commit still has the old text
    old = fg.read(first.commit).to_pylist()
    assert "lazily" in [r for r in old if r["doc_id"] == "sub/gen.txt"][0]["text"]


def test_missing_documents_are_deleted_only_with_sync(store, corpus, hash_config):
    fg, _ = ingest(store, corpus, hash_config)
    (corpus / "loops.md").unlink()
    s = run_ingest(fg, [str(corpus)])
    assert not s.committed and "loops.md" in {r["doc_id"] for r in fg.read().to_pylist()}
    s = run_ingest(fg, [str(corpus)], sync=True)
    assert s.committed and s.documents["deleted"] == 1
    assert "loops.md" not in {r["doc_id"] for r in fg.read().to_pylist()}


def test_sync_keeps_a_document_whose_new_version_is_quarantined(store, corpus, hash_config):
    fg, _ = ingest(store, corpus, hash_config)
    write(corpus / "with.md", b"\x00\x01 now binary")
    s = run_ingest(fg, [str(corpus)], sync=True)
    assert s.documents["quarantined"] == 1 and s.documents["deleted"] == 0
    assert "with.md" in {r["doc_id"] for r in fg.read().to_pylist()}
    q = fg.store.quarantine(fg.key, s.run_id)
    assert [(r["reason"], r["source"].endswith("with.md")) for r in q] == [("binary", True)]


def test_bad_inputs_do_not_stop_good_ones(store, corpus, hash_config):
    write(corpus / "bad.txt", "caf\xe9".encode("latin-1"))
    write(corpus / "empty.md", "   \n")
    fg, s = ingest(store, corpus, hash_config)
    assert s.documents["added"] == 3 and s.documents["quarantined"] == 2
    assert {q["reason"] for q in s.quarantine} == {"undecodable", "empty"}


def test_other_embedder_or_chunker_is_refused_and_nothing_changes(store, corpus, hash_config):
    fg, s = ingest(store, corpus, hash_config)
    rows = fg.read().num_rows
    with pytest.raises(IncompatibleError, match="--version 2"):
        run_ingest(fg, [str(corpus)], config=FeatureConfig(embedder={"model": "hash-32"}, chunker=hash_config.chunker))
    with pytest.raises(IncompatibleError, match="chunk"):
        run_ingest(fg, [str(corpus)], config=FeatureConfig(embedder=hash_config.embedder, chunker={"chunk_tokens": 50, "overlap": 8}))
    assert fg.read().num_rows == rows and fg.table().version == s.commit
    v2 = store.feature_group("docs", version=2, must_exist=False)
    assert run_ingest(v2, [str(corpus)], config=FeatureConfig(embedder={"model": "hash-32"})).committed
    assert store.versions("docs") == [1, 2]


def test_time_travel_by_commit_tag_and_time(store, corpus, hash_config):
    fg, first = ingest(store, corpus, hash_config)
    fg.tag(first.commit, "v-one")
    t_between = fg.versions_log()[-1]["timestamp"].isoformat()
    time.sleep(0.05)
    write(corpus / "new.md", "# New\n\nA late arriving document about decorators.\n")
    second = run_ingest(fg, [str(corpus)])
    assert second.commit > first.commit
    now_ids, old_ids = chunk_ids(fg), chunk_ids(fg, first.commit)
    assert len(now_ids) == len(old_ids) + 1
    assert chunk_ids(fg, "v-one") == old_ids
    assert chunk_ids(fg, t_between) == old_ids
    res = fg.search("decorators", k=10, as_of="v-one")
    assert res["commit"] == first.commit and all(r["doc_id"] != "new.md" for r in res["results"])
    assert fg.search("decorators", k=1)["results"][0]["doc_id"] == "new.md"
    hist = fg.history()
    assert [h["tags"] for h in hist if h["commit"] == first.commit] == [["v-one"]]
    assert sum(1 for h in hist if h["change"] == "data") == 2


def test_search_hybrid_and_where(store, corpus, hash_config):
    fg, _ = ingest(store, corpus, hash_config)
    hybrid = fg.search("context manager", k=3, hybrid=True)
    assert hybrid["results"] and hybrid["results"][0]["doc_id"] == "with.md"
    filtered = fg.search("loop", k=5, where="doc_id = 'sub/gen.txt'")
    assert {r["doc_id"] for r in filtered["results"]} == {"sub/gen.txt"}


def test_records_kind_keeps_typed_fields(store, tmp_path):
    write(tmp_path / "qa.jsonl", '{"id": "q1", "question": "What is 2+2?", "answer": "4", "event_time": "2024-01-01"}\n'
          '{"instruction": "Say hi", "answer": "hi", "context_ids": ["c1"]}\n{"question": "no answer"}\n')
    fg = store.feature_group("qa", must_exist=False)
    s = run_ingest(fg, [str(tmp_path / "qa.jsonl")], config=FeatureConfig(kind="records", embedder={"model": "hash-32"}))
    assert s.documents["added"] == 2 and s.documents["quarantined"] == 1
    rows = {r["doc_id"]: r for r in fg.read().to_pylist()}
    assert rows["q1"]["question"] == "What is 2+2?" and rows["q1"]["answer"] == "4"
    other = [r for k, r in rows.items() if k != "q1"][0]
    assert other["question"] == "Say hi" and other["context_ids"] == ["c1"]


def test_vector_index_is_built_past_the_threshold_and_search_uses_it(store, tmp_path):
    from llmfti.store.indexing import has_vector_index

    for i in range(60):
        write(tmp_path / "many" / f"d{i:02d}.md", f"# Doc {i}\n\nTopic number {i} talks about item{i} and shared words.\n")
    cfg = FeatureConfig(embedder={"model": "hash-512"}, index_threshold=50)
    fg = store.feature_group("big", must_exist=False)
    s = run_ingest(fg, [str(tmp_path / "many")], config=cfg)
    assert s.committed and has_vector_index(fg.table())
    top = fg.search("item42", k=3)["results"]
    assert top[0]["doc_id"] == "d42.md"
    # more rows than the stale fraction: the index is rebuilt and still finds the new rows
    for i in range(60, 80):
        write(tmp_path / "many" / f"d{i:02d}.md", f"# Doc {i}\n\nTopic number {i} talks about item{i}.\n")
    run_ingest(fg, [str(tmp_path / "many")])
    assert fg.search("item77", k=1)["results"][0]["doc_id"] == "d77.md"
    assert fg.search("item42", k=1, hybrid=True)["results"][0]["doc_id"] == "d42.md"


def test_sync_keeps_records_of_a_jsonl_file_quarantined_as_a_whole(store, tmp_path):
    write(tmp_path / "src" / "recs.jsonl", '{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    fg = store.feature_group("recs", must_exist=False)
    run_ingest(fg, [str(tmp_path / "src")], config=FeatureConfig(embedder={"model": "hash-16"}))
    write(tmp_path / "src" / "recs.jsonl", b"\x00binary now")
    s = run_ingest(fg, [str(tmp_path / "src")], sync=True)
    assert s.documents["deleted"] == 0 and {r["doc_id"] for r in fg.read().to_pylist()} == {"a", "b"}


def test_bad_values_are_usage_errors_not_tracebacks(store, tmp_path):
    import subprocess
    import sys

    write(tmp_path / "d" / "huge-date.md", "---\ndate: 100000000000000000000\n---\nbody")
    write(tmp_path / "d" / "ok.md", "fine")
    s = run_ingest(store.feature_group("dates", must_exist=False), [str(tmp_path / "d")], config=FeatureConfig(embedder={"model": "hash-16"}))
    assert s.documents["added"] == 1 and s.quarantine[0]["reason"] == "unparseable"
    cmd = [sys.executable, "-m", "llmfti", "--home", str(store.home.root), "ingest", str(tmp_path / "d"), "-f", "dates"]
    for extra in (["--kind", "bogus"], ["--set", "chunker.chunk_tokens=abc"]):
        out = subprocess.run(cmd + extra, capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert store.feature_group("dates").info["kind"] == "documents"
