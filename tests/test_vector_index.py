"""The ANN index a feature group gets (IVF_SQ + a refine pass): recall against exact search, exact scores.

Speed is measured in bench/vector_index_trials.py and bench/growth.py, not here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DIM = 64


def _clustered(rows: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((rows // 40, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    v = centers[np.arange(rows) % len(centers)] + rng.standard_normal((rows, DIM)).astype(np.float32) * (0.5 / np.sqrt(DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), centers, rng


def _rows(vectors, start: int, stop: int):
    """Rows start..stop of a table of chunk ids, texts and the given vectors."""
    return pa.table({"chunk_id": [f"c{i}" for i in range(start, stop)], "text": [f"text {i}" for i in range(start, stop)],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[start:stop].ravel()), DIM)})


def test_the_quantized_index_keeps_recall_and_reports_exact_cosines(tmp_path):
    import lancedb

    from llmfti.store.indexing import ensure_indexes
    from llmfti.store.search import query_table

    rows = 8000
    vectors, centers, rng = _clustered(rows)
    tbl = lancedb.connect(str(tmp_path)).create_table("t", pa.table({
        "chunk_id": [f"c{i}" for i in range(rows)], "doc_id": [f"d{i // 10}" for i in range(rows)],
        "source": ["s"] * rows, "heading_path": ["h"] * rows, "text": [f"text {i}" for i in range(rows)],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
    }))
    assert "vector" in ensure_indexes(tbl, threshold=1000)
    vec_index = [i for i in tbl.list_indices() if "vector" in list(i.columns)][0]
    assert str(vec_index.index_type) == "IvfSq"

    recalls = []
    for _ in range(30):  # cold queries: fresh vectors near random centres, never a stored row
        q = centers[rng.integers(len(centers))] + rng.standard_normal(DIM).astype(np.float32) * (0.5 / np.sqrt(DIM))
        q = (q / np.linalg.norm(q)).astype(np.float32)
        exact = vectors @ q
        truth = set(np.argsort(-exact)[:10].tolist())
        got = query_table(tbl, q, "", 10)
        ids = [int(r["chunk_id"][1:]) for r in got]
        recalls.append(len(truth & set(ids)) / 10)
        # The refine pass re-ranks on full vectors: scores are the exact cosines, not int8 estimates.
        assert np.allclose([r["score"] for r in got], exact[ids], atol=1e-5)
    assert np.mean(recalls) >= 0.95


def test_new_rows_join_the_vector_index_as_a_delta_and_enough_of_them_retrain_it(tmp_path):
    """A commit's few new rows are indexed (not left to a full scan by every query) without retraining;
    past the stale fraction the index is retrained into one segment."""
    import lancedb

    from llmfti.store.indexing import ensure_indexes

    vectors, centers, rng = _clustered(6000)

    def rows(start, stop):
        return _rows(vectors, start, stop)

    tbl = lancedb.connect(str(tmp_path)).create_table("t", rows(0, 4000))
    assert "vector" in ensure_indexes(tbl, threshold=1000)
    stats = lambda: tbl.index_stats([i.name for i in tbl.list_indices() if "vector" in list(i.columns)][0])  # noqa: E731

    tbl.add(rows(4000, 4200))  # 5 %: a delta segment, no retraining
    assert "vector+" in ensure_indexes(tbl, threshold=1000)
    assert (stats().num_unindexed_rows, stats().num_indices) == (0, 2)
    found = tbl.search(vectors[4100]).distance_type("cosine").nprobes(32).limit(1).to_list()[0]
    assert found["chunk_id"] == "c4100"

    tbl.add(rows(4200, 4400))  # another 5 %: 400 rows since training, still under 10 % of 4400
    assert "vector+" in ensure_indexes(tbl, threshold=1000)
    tbl.add(rows(4400, 4600))  # 600 rows since training: more than 10 % of 4600, so retrained
    assert "vector" in ensure_indexes(tbl, threshold=1000)
    assert (stats().num_unindexed_rows, stats().num_indices) == (0, 1)


def test_vector_deltas_merge_among_themselves_and_keep_the_trained_segment(tmp_path, monkeypatch):
    import lancedb

    from llmfti.store import indexing

    monkeypatch.setattr(indexing, "MAX_VECTOR_DELTAS", 3)
    vectors, _, _ = _clustered(4400)

    def rows(start, stop):
        return _rows(vectors, start, stop)

    tbl = lancedb.connect(str(tmp_path)).create_table("t", rows(0, 4000))
    indexing.ensure_indexes(tbl, threshold=1000)
    name = [i.name for i in tbl.list_indices() if "vector" in list(i.columns)][0]

    def per_segment():
        return tbl.to_lance().stats.index_stats(name)["num_indexed_rows_per_delta"]

    for start in range(4000, 4400, 100):  # four commits of 100 rows: 2.5 % each, never a retraining
        tbl.add(rows(start, start + 100))
        assert indexing.ensure_indexes(tbl, threshold=1000)[-1] == "vector+"
    # Deltas 1 and 2, then the third merged them with its rows, then a fourth delta: never more than 3
    # segments, and the trained one untouched.
    assert per_segment() == [4000, 300, 100]
    assert tbl.search(vectors[4350]).distance_type("cosine").nprobes(32).limit(1).to_list()[0]["chunk_id"] == "c4350"


def test_rows_since_training_are_counted_from_the_manifest_as_lance_counts_them(tmp_path):
    """`_since_training` reads index segments and fragment row counts from the manifest (~1 ms) instead of
    Lance's index statistics (12-100 ms per ingest at 100k rows): the same figure after deltas, after
    deletions, and after maintenance rewrote the fragments and remapped the index."""
    import lancedb

    from llmfti.store import indexing
    from llmfti.store.maintenance import compact

    vectors, _, _ = _clustered(4600)

    def rows(start, stop):
        return _rows(vectors, start, stop)

    tbl = lancedb.connect(str(tmp_path)).create_table("t", rows(0, 4000))
    indexing.ensure_indexes(tbl, threshold=1000)
    vec = indexing._index_by_column(tbl, "vector")

    def lance_figure():
        per_segment = tbl.to_lance().stats.index_stats(vec.name)["num_indexed_rows_per_delta"]
        return indexing._unindexed(tbl, vec) + sum(per_segment[1:])

    assert indexing._since_training(tbl, vec) == lance_figure() == 0
    tbl.add(rows(4000, 4100))
    assert indexing._since_training(tbl, vec) == lance_figure() == 100  # unindexed
    indexing.ensure_indexes(tbl, threshold=1000)
    tbl.add(rows(4100, 4300))
    assert indexing._since_training(tbl, vec) == lance_figure() == 300  # one delta segment + unindexed rows
    indexing.ensure_indexes(tbl, threshold=1000)
    tbl.delete("chunk_id IN ('c5', 'c4150')")  # one row the trained segment covers, one a delta covers
    compact(tbl, 1 << 20, materialize_deletions=True)  # rewritten fragments, the index remapped
    assert indexing._since_training(tbl, vec) == lance_figure() == 299


def test_deleted_rows_are_materialized_before_the_index_is_trained(tmp_path):
    """Lance trains an IVF index pathologically slowly over fragments with deletion files (minutes
    instead of seconds at 1M rows), so a retraining first rewrites them; the rows read stay the same."""
    import lancedb

    from llmfti.store.indexing import ensure_indexes

    vectors, _, _ = _clustered(4000)
    tbl = lancedb.connect(str(tmp_path)).create_table("t", pa.table({
        "chunk_id": [f"c{i}" for i in range(4000)], "text": [f"text {i}" for i in range(4000)],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)}))
    ensure_indexes(tbl, threshold=1000)
    tbl.delete("chunk_id IN ('c1', 'c2', 'c3')")  # what a re-ingest's replaced chunks leave
    tbl.add(pa.table({"chunk_id": [f"n{i}" for i in range(600)], "text": ["new"] * 600,
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[:600].ravel()), DIM)}))
    assert any(f.metadata.deletion_file is not None for f in tbl.to_lance().get_fragments())
    assert "vector" in ensure_indexes(tbl, threshold=1000)  # 600 new rows: past 10 %, retrained
    assert not any(f.metadata.deletion_file is not None for f in tbl.to_lance().get_fragments())
    ids = set(tbl.to_arrow()["chunk_id"].to_pylist())
    assert len(ids) == 4597 and "c1" not in ids and "n599" in ids


def test_an_index_commit_preempted_by_a_concurrent_writer_is_decided_again(tmp_path, monkeypatch):
    """Two first ingests at once both build the full-text index; Lance refuses the second commit as a
    retryable conflict. The loser used to fail the whole ingest; it now re-reads and finds the index."""
    import lancedb

    from llmfti.store.indexing import ensure_indexes

    tbl = lancedb.connect(str(tmp_path)).create_table("t", pa.table({"chunk_id": ["a", "b"], "text": ["alpha", "beta"],
                                                                        "vector": pa.FixedSizeListArray.from_arrays(pa.array([0.0] * 2 * DIM, pa.float32()), DIM)}))
    other = lancedb.connect(str(tmp_path)).open_table("t")
    real = type(tbl).create_fts_index
    calls = []

    def preempted(self, *args, **kwargs):
        calls.append(1)
        real(other, *args, **kwargs)  # the concurrent writer's index lands first
        raise RuntimeError("lance error: Retryable commit conflict for version 3: This CreateIndex transaction was "
                           "preempted by concurrent transaction CreateIndex at version 3. Please retry.")

    monkeypatch.setattr(type(tbl), "create_fts_index", preempted)
    assert ensure_indexes(tbl, threshold=1000) == []  # nothing left to build: the winner's index covers it
    assert calls == [1] and any("text" in list(i.columns) for i in tbl.list_indices())


def test_the_manifest_check_agrees_with_ensure_indexes_on_whether_there_is_work(tmp_path):
    """`indexes_current` (pylance manifest only: what a no-op re-ingest checks instead of connecting)
    answers True exactly when `ensure_indexes` then finds nothing to do: no index yet, new unindexed
    rows, a stale vector index, deletions, a remapping compaction, a table under the vector threshold."""
    import lancedb

    from llmfti.store import indexing
    from llmfti.store.maintenance import compact

    vectors, _, _ = _clustered(6000)
    db = lancedb.connect(str(tmp_path))
    seen = []

    def check(tbl, threshold=1000):
        current = indexing.indexes_current(tbl.to_lance(), threshold)
        built = indexing.ensure_indexes(tbl, threshold)
        assert current == (built == []), (current, built)
        seen.append((current, tuple(built)))

    small = db.create_table("small", _rows(vectors, 0, 50))
    check(small)  # full-text only below the threshold
    check(small)
    tbl = db.create_table("t", _rows(vectors, 0, 4000))
    check(tbl)  # no index at all
    check(tbl)
    tbl.add(_rows(vectors, 4000, 4100))
    check(tbl)  # new rows: deltas
    check(tbl)
    tbl.add(_rows(vectors, 4100, 5000))
    check(tbl)  # more than the stale fraction: retrained
    tbl.delete("chunk_id IN ('c5', 'c4050')")
    check(tbl)  # deletions alone add nothing to index
    compact(tbl, 1 << 20, materialize_deletions=True)
    check(tbl)
    assert seen == [(False, ("fts",)), (True, ()), (False, ("fts", "vector")), (True, ()), (False, ("fts+", "vector+")), (True, ()),
                    (False, ("fts+", "vector")), (True, ()), (True, ())]
    from lancedb.index import BTree

    tbl.create_index("text", config=BTree())  # a second index on the column: the manifest check leaves the call to ensure_indexes
    assert not indexing.indexes_current(tbl.to_lance(), 1000)
