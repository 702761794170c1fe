"""The feature pipeline's commit (`pipelines/feature_commit._merge_into`): one table version that upserts the
run's rows and removes the replaced documents' other rows, with commit properties in that same version; a
run whose rows lack a column the table has (written by another version of llmfti) still commits; and a
re-ingest reports the chunks it replaced and deleted."""

from __future__ import annotations

import pyarrow as pa

from conftest import write

SCHEMA = pa.schema([("chunk_id", pa.string()), ("doc_id", pa.string()), ("text", pa.string()), ("score_x", pa.float32())])


def _table(tmp_path):
    import lancedb

    rows = {"chunk_id": ["a1", "a2", "b1"], "doc_id": ["a", "a", "b"], "text": ["x", "y", "z"], "score_x": [1.0, 2.0, 3.0]}
    return lancedb.connect(str(tmp_path)).create_table("t", pa.table(rows, schema=SCHEMA))


def _rows(tbl):
    return sorted((r["chunk_id"], r["doc_id"], r["text"], r["score_x"]) for r in tbl.to_arrow().to_pylist())


def test_one_version_replaces_a_document_and_carries_the_properties(tmp_path):
    from llmfti.pipelines.feature_commit import _merge_into

    tbl = _table(tmp_path)
    before = tbl.version
    data = pa.table({"chunk_id": ["a1", "a3"], "doc_id": ["a", "a"], "text": ["x2", "new"], "score_x": [4.0, 5.0]}, schema=SCHEMA)
    assert _merge_into(tbl, data, ["a"], {"offsets": "p0:7"})
    assert tbl.version == before + 1
    assert _rows(tbl) == [("a1", "a", "x2", 4.0), ("a3", "a", "new", 5.0), ("b1", "b", "z", 3.0)]  # a2 gone, a1 updated
    assert tbl.to_lance().get_transactions(1)[0].transaction_properties.get("offsets") == "p0:7"


def test_rows_without_a_column_the_table_has_still_commit(tmp_path):
    from llmfti.pipelines.feature_commit import _merge_into

    tbl = _table(tmp_path)
    assert _merge_into(tbl, pa.table({"chunk_id": ["a3"], "doc_id": ["a"], "text": ["new"]}), ["a"], None)
    assert _rows(tbl) == [("a3", "a", "new", None), ("b1", "b", "z", 3.0)]


def test_a_re_ingest_reports_the_chunks_it_replaced_and_deleted(store, tmp_path, hash_config):
    from llmfti.pipelines.feature import ingest as run_ingest

    corpus = tmp_path / "corpus"
    long = " ".join(f"Sentence {i} about topic {i}." for i in range(200))  # several chunks
    write(corpus / "a.md", f"# A\n\n{long}\n")
    write(corpus / "b.md", f"# B\n\n{long} And b.\n")
    write(corpus / "c.md", "# C\n\nUnchanged.\n")
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    stored = fg.read(columns=["doc_id"]).column("doc_id").to_pylist()
    before = {d: stored.count(d) for d in ("a.md", "b.md")}
    assert min(before.values()) > 1

    write(corpus / "a.md", "# A\n\nShorter now.\n")
    (corpus / "b.md").unlink()
    summary = run_ingest(fg, [str(corpus)], config=hash_config, sync=True)
    assert (summary.documents["updated"], summary.documents["deleted"]) == (1, 1)
    assert summary.chunks_deleted == before["a.md"] + before["b.md"]
    assert summary.chunks_written == fg.read(columns=["doc_id"]).column("doc_id").to_pylist().count("a.md")
