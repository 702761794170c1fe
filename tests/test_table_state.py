"""A run that changes nothing learns so without opening a table (llmfti.table_state): the metadata from
a local copy, the documents from the source keys' vouched state. Both are valid only while the table's
signature (its `_versions/` listing) is the one they were made at: any commit, by anyone, ends that, so
a stale copy or state costs a table read, never a wrong answer."""

from __future__ import annotations

import os

import pyarrow as pa

from conftest import write
from llmfti.hashing import sha256_file_memo
from llmfti.home import ProjectHome
from llmfti.pipelines.feature import ingest as run_ingest
from llmfti.store import FeatureStore
from llmfti.store.source_keys import SourceKeys
from llmfti.table_state import consistent_read, pylist, table_rows, table_signature


def fresh_ingest(home, corpus, config=None, **kwargs):
    """One ingest as a new process makes it: a new, unconnected store."""
    store = FeatureStore(home)
    fg = store.feature_group("docs", must_exist=False)
    return run_ingest(fg, [str(corpus)], config=config, **kwargs), store


def no_table_reads(monkeypatch):
    """Fail any attempt to open a table (pylance or a LanceDB connection)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a table was opened")

    monkeypatch.setattr(ProjectHome, "dataset", refuse)
    monkeypatch.setattr(ProjectHome, "connect", refuse)


def test_a_no_op_opens_no_table_and_reports_the_same_commit(home, corpus, hash_config, monkeypatch):
    first, _ = fresh_ingest(home, corpus, hash_config)
    with monkeypatch.context() as m:
        no_table_reads(m)
        again, store = fresh_ingest(home, corpus)
    assert not again.committed and again.documents["unchanged"] == 3
    assert again.commit == first.commit and not store.connected


def test_a_commit_by_another_writer_ends_the_vouched_state(home, corpus, hash_config):
    fresh_ingest(home, corpus, hash_config)
    fresh_ingest(home, corpus)  # a no-op on the fast path
    # Another writer removes a document's rows behind the pipeline's back.
    other = FeatureStore(home).feature_group("docs")
    other.table().delete("doc_id = 'loops.md'")
    again, _ = fresh_ingest(home, corpus)
    assert again.committed and again.documents["added"] == 1 and again.documents["unchanged"] == 2
    docs = set(FeatureStore(home).feature_group("docs").dataset().to_table(columns=["doc_id"]).column("doc_id").to_pylist())
    assert "loops.md" in docs


def count_scans(monkeypatch) -> list:
    """Record every scan of the stored documents (the full path; the fast path makes none)."""
    import llmfti.pipelines.feature_state as feature_state

    scans = []
    real = feature_state.stored_docs
    monkeypatch.setattr(feature_state, "stored_docs", lambda fg: scans.append(fg.key) or real(fg))
    return scans


def test_changes_deletes_and_bad_input_take_the_full_path(home, corpus, hash_config, monkeypatch):
    from llmfti.pipelines.feature import ingest_items
    from llmfti.sources.loaders import load_sources

    scans = count_scans(monkeypatch)
    fresh_ingest(home, corpus, hash_config)  # a small table: the committing run vouches for its commit
    scans.clear()
    fresh_ingest(home, corpus)
    assert scans == []  # so this no-op takes the fast path: the control for what follows

    write(corpus / "new.md", "# New\n\nA new document.\n")
    added, _ = fresh_ingest(home, corpus)
    assert added.committed and added.documents["added"] == 1 and len(scans) == 1
    (corpus / "new.md").unlink()
    kept, _ = fresh_ingest(home, corpus)  # without --sync a missing file stays (fast path: nothing to do)
    assert not kept.committed
    scans.clear()
    synced, _ = fresh_ingest(home, corpus, sync=True)
    assert synced.committed and synced.documents["deleted"] == 1 and synced.chunks_deleted >= 1 and scans == ["docs:1"]

    (corpus / "loops.md").unlink()
    scans.clear()
    fg = FeatureStore(home).feature_group("docs")
    gone = ingest_items(fg, lambda cfg: load_sources([str(corpus)], max_file_bytes=cfg.max_file_bytes, kind=cfg.kind), deletes=["loops.md"])
    assert gone.committed and gone.documents["deleted"] == 1 and gone.chunks_deleted >= 1 and scans == ["docs:1"]

    fresh_ingest(home, corpus)  # vouch again
    write(corpus / "bad.pdf", b"%PDF-1.4 not really")
    scans.clear()
    bad, _ = fresh_ingest(home, corpus)
    assert not bad.committed and bad.documents["quarantined"] == 1 and scans == ["docs:1"]
    assert FeatureStore(home).quarantine("docs:1")  # the quarantine record was written


def test_another_index_threshold_takes_the_full_path(home, corpus, hash_config, monkeypatch):
    scans = count_scans(monkeypatch)
    fresh_ingest(home, corpus, hash_config)
    fresh_ingest(home, corpus)
    scans.clear()
    lower = hash_config.model_copy(update={"index_threshold": hash_config.index_threshold // 2})
    again, store = fresh_ingest(home, corpus, lower)
    # Its indices were judged current at another threshold: this run checks them at its own.
    assert not again.committed and scans == ["docs:1"]
    keys = SourceKeys(store.feature_group("docs"))
    keys.load()
    assert keys.state["index_threshold"] == lower.index_threshold


def test_a_state_is_vouched_only_for_a_commit_nobody_changed_during_the_check(home, corpus, hash_config):
    fresh_ingest(home, corpus, hash_config)
    h = ProjectHome.at(home)
    name = FeatureStore(home).feature_group("docs").table_name

    def read_while_another_writer_commits(ds):
        FeatureStore(home).feature_group("docs").table().delete("doc_id = 'with.md'")
        return ds.version

    version, signature = consistent_read(h, name, read_while_another_writer_commits)
    assert signature is None  # the listing changed during the read: nothing may be vouched for
    version, signature = consistent_read(h, name, lambda ds: ds.version)
    assert signature == table_signature(h, name) and version == FeatureStore(home).feature_group("docs").dataset().version


def test_a_cache_that_disagrees_with_the_table_is_never_vouched_for(home, corpus, hash_config):
    first, store = fresh_ingest(home, corpus, hash_config)
    fg = store.feature_group("docs")
    keys = SourceKeys(fg)
    entries = keys.load()
    assert keys.state and keys.state["version"] == first.commit and keys.state["indexes_current"]
    # A cache missing a stored document is not what the table holds: the next run scans, then repairs it.
    keys.save({d: v for d, v in entries.items() if d != "with.md"}, None)
    again, _ = fresh_ingest(home, corpus)
    assert not again.committed
    repaired = SourceKeys(fg)
    assert repaired.load() == entries and repaired.state["signature"] == table_signature(ProjectHome.at(home), fg.table_name)


def test_the_metadata_copy_follows_the_table(home, corpus, hash_config, monkeypatch):
    fresh_ingest(home, corpus, hash_config)
    h = ProjectHome.at(home)
    with monkeypatch.context() as m:
        no_table_reads(m)
        assert FeatureStore(home).versions("docs") == [1]  # from the copy
    # A row written straight into the table (not through register_meta, which refreshes the copy):
    # the table's signature changes, so the copy is not used.
    meta = h.connect().open_table("_fg_meta")
    row = meta.search().limit(1).to_arrow()
    row = row.set_column(row.schema.get_field_index("key"), "key", pa.array(["docs:3"], pa.string()))
    row = row.set_column(row.schema.get_field_index("version"), "version", pa.array([3], pa.int32()))
    meta.add(row)
    assert FeatureStore(home).versions("docs") == [1, 3]
    # A torn copy is read around, not trusted.
    copy = h.root / "cache" / "tables" / "_fg_meta.arrow"
    copy.write_bytes(b"not arrow")
    assert FeatureStore(home).versions("docs") == [1, 3]
    assert table_rows(h, "_fg_meta").num_rows == 2
    assert table_rows(h, "no_such_table") is None


def test_pylist_matches_pyarrow_without_pandas():
    t = pa.table({
        "naive": pa.array([0, None, -1_500_000, 10**15], pa.timestamp("us")),
        "utc": pa.array([1, 2, None, 4], pa.timestamp("s", tz="UTC")),
        "paris": pa.array([1, 2, 3, 4], pa.timestamp("ms", tz="Europe/Paris")),
        "offset": pa.array([1, 2, 3, 4], pa.timestamp("s", tz="+02:00")),  # left to pyarrow
        "text": ["a", None, "c", "d"],
    })
    chunked = pa.concat_tables([t.slice(0, 2), t.slice(2)])
    for table in (t, chunked):
        got, want = pylist(table), table.to_pylist()
        assert got == want and [repr(r) for r in got] == [repr(r) for r in want]


def test_a_remembered_file_hash_follows_the_file(tmp_path, monkeypatch):
    import llmfti.hashing as hashing

    monkeypatch.setenv("LLMFTI_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 4096)
    calls = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: calls.append(p) or real(p))
    # A file changed in the last seconds is hashed every time (a rewrite in the same timestamp tick
    # would keep its key).
    assert sha256_file_memo(f) == real(f) and sha256_file_memo(f) == real(f)
    assert len(calls) == 2
    monkeypatch.setattr(hashing, "_RACY_NS", 0)  # as if the file were older
    before = sha256_file_memo(f)
    calls.clear()
    assert sha256_file_memo(f) == before and calls == []  # remembered
    st = f.stat()
    f.write_bytes(b"b" * 4096)  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old modification time
    after = sha256_file_memo(f)
    assert calls and after == real(f) != before


def test_object_store_homes_have_no_signature():
    h = ProjectHome.at("s3://bucket/prefix", storage_options={"aws_endpoint": "http://127.0.0.1:9"})
    assert table_signature(h, "_fg_meta") is None


def test_documents_the_keys_do_not_know_keep_the_full_path(home, corpus, hash_config):
    """Rows another writer added (not from these sources) are in no source key: the state is never
    vouched for, so --sync still sees and deletes them."""
    fresh_ingest(home, corpus, hash_config)
    tbl = FeatureStore(home).feature_group("docs").table()
    row = tbl.search().where("doc_id = 'with.md'").limit(1).to_arrow()
    foreign = row.set_column(row.schema.get_field_index("doc_id"), "doc_id", pa.array(["elsewhere.md"]))
    foreign = foreign.set_column(foreign.schema.get_field_index("chunk_id"), "chunk_id", pa.array(["elsewhere.md#0"]))
    tbl.add(foreign)
    kept, _ = fresh_ingest(home, corpus)  # indexes the new rows
    assert not kept.committed
    again, _ = fresh_ingest(home, corpus)  # indices current: a no-op whose own scan sees the foreign rows
    assert not again.committed
    synced, _ = fresh_ingest(home, corpus, sync=True)
    assert synced.committed and synced.documents["deleted"] == 1


def test_large_tables_are_vouched_for_by_the_next_no_op_scan_not_by_an_extra_one(home, corpus, hash_config, monkeypatch):
    import llmfti.pipelines.feature_state as feature_state

    monkeypatch.setattr(feature_state, "VOUCH_SCAN_MAX_ROWS", 0)  # every table counts as large
    extra_scans = []
    real = feature_state.vouch
    monkeypatch.setattr(feature_state, "vouch", lambda *a: extra_scans.append(a) or real(*a))
    first, store = fresh_ingest(home, corpus, hash_config)
    fg = store.feature_group("docs")
    keys = SourceKeys(fg)
    keys.load()
    assert extra_scans == [] and keys.state is None  # the committing run paid no second scan
    second, _ = fresh_ingest(home, corpus)  # scans (no state), and vouches from that scan
    assert not second.committed and keys.load() and keys.state["version"] == first.commit and extra_scans == []
    with monkeypatch.context() as m:
        no_table_reads(m)
        third, _ = fresh_ingest(home, corpus)
    assert not third.committed and third.commit == first.commit
