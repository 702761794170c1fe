"""Index maintenance for feature-group tables.

- Full-text index on `text` (for hybrid search): built once; after that each commit's new rows go
  into a small delta index (`optimize_indices(num_indices_to_merge=0)`: ~0.1 s at 100k rows, where a
  rebuild took 4.6 s and a merging update ~1 s, both growing with the table). `update_indexes`
  (run by maintenance, and by a commit once MAX_DELTAS deltas pile up) merges the deltas. Lance
  compacts fragments only within one index segment, so maintenance merges before it compacts.
- ANN vector index (IVF_SQ, cosine) once the table reaches `threshold` rows: new rows join it as
  delta segments, and it is retrained once the rows added since its training pass `stale_fraction`
  of the table. Below the threshold, search is exact (flat).

Why IVF_SQ with sqrt(n) partitions and a refine pass (bench/vector_index_trials.py, 1M rows of
bench/growth.py's clustered vectors, 200 cold queries, 2 quiet cores; bench/README.md has the table):
search.NPROBES=32 with refine_factor 2 gave 7.4 ms p50 / 8.6 ms p95 at recall@10 0.983, where the
previous IVF_FLAT with sqrt(n)/2 partitions took 10.3 ms p50 / 36.7 ms p95 (it scans full-precision
vectors: 4x the bytes of int8 codes). IVF_PQ (9-10 ms), IVF_RQ (7.5-7.9 ms, recall 0.98) and
IVF_HNSW_SQ (9.2-10 ms, recall <= 0.96, 142 s to build) were measured too. The refine pass re-ranks
2 x k candidates on their full vectors, so scores stay exact cosines.

The vector index takes each commit's new rows as a delta segment that reuses the trained centroids
(`optimize_indices(num_indices_to_merge=0)`: 0.7 s for 10k new rows at 1M; every segment keeps the
trained partitions, and merging deltas among themselves keeps them too, measured with lancedb 0.40 /
pylance 14. Merging the trained segment is what once re-partitioned a small index into 3 partitions,
so it is never merged). Unindexed rows would be scanned in full by every query: 10k of
them (a 1 % re-ingest at 1M rows) took a query from 7 ms to 13 ms. Each segment costs a probe per
query, so once MAX_VECTOR_DELTAS would pile up the deltas merge into one. The index is retrained with
num_partitions(rows) when the rows added since the last training pass `stale_fraction` of the table,
so rebuild cost is amortised over the rows added since (geometric growth).

Index builds are separate table versions holding the same data; ingest reports the version after
maintenance as its commit so reads pinned to it get the indices too.
"""

from __future__ import annotations

import math
import time
import warnings


def _index_by_column(tbl, column: str):
    for idx in tbl.list_indices():
        if column in list(idx.columns):
            return idx
    return None


def _unindexed(tbl, idx) -> int:
    stats = tbl.index_stats(idx.name)
    return int(getattr(stats, "num_unindexed_rows", 0) or 0) if stats else tbl.count_rows()


MAX_DELTAS = 16  # delta segments of one index before a commit merges them (each costs a lookup per query)
MAX_VECTOR_DELTAS = 8  # vector index segments (the trained one + deltas) before the deltas merge into one


def _is_vector(idx) -> bool:
    return "vector" in list(idx.columns) or str(idx.index_type).lower().startswith("ivf")


def _segments(tbl, idx) -> int:
    stats = tbl.index_stats(idx.name)
    return int(getattr(stats, "num_indices", 1) or 1) if stats else 1


def _optimize(tbl, names: list[str], merge: bool) -> None:
    """Add unindexed rows to the named indices: as a new delta segment, or with every segment merged
    into one (the count must be explicit: the default merges nothing when no rows are new)."""
    segments = max((_segments(tbl, i) for i in tbl.list_indices() if i.name in names), default=1)
    tbl.to_lance().optimize.optimize_indices(index_names=names, num_indices_to_merge=segments if merge else 0)
    tbl.checkout_latest()


def update_indexes(tbl, *, merge: bool = True) -> list[str]:
    """Bring every non-vector index (full text, scalar) up to date without rebuilding it: new rows
    are added, deltas merged (`merge`). One new version when anything changed. Returns the names."""
    names = []
    for idx in tbl.list_indices():
        if _is_vector(idx):
            continue
        if _unindexed(tbl, idx) > 0 or (merge and _segments(tbl, idx) > 1):
            names.append(idx.name)
    if names:
        _optimize(tbl, names, merge)
    return names


CONFLICT_RETRIES = 5  # attempts when a concurrent writer's index commit preempts ours


def ensure_indexes(tbl, threshold: int, stale_fraction: float = 0.1) -> list[str]:
    """Create or refresh indices as needed after a commit; returns what was built or updated
    ('fts' built, 'fts+' new rows added, 'vector' (re)trained, 'vector+' new rows added).

    Two runs committing at once (two first ingests of one group) can both decide to build the same
    index; Lance then refuses the second commit as a retryable conflict. The loser re-reads the table
    and decides again: usually the winner's index already covers what it needed."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return _ensure_indexes(tbl, threshold, stale_fraction)
        except (RuntimeError, OSError) as exc:
            if "commit conflict" not in str(exc).lower() or attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
            tbl.checkout_latest()
    return []


def _ensure_indexes(tbl, threshold: int, stale_fraction: float) -> list[str]:
    from lancedb.index import IvfSq

    built = []
    rows = tbl.count_rows()
    if rows == 0:
        return built
    fts = _index_by_column(tbl, "text")
    if fts is None:
        with warnings.catch_warnings():
            # create_fts_index is the table-level API lancedb 0.40 still documents for local tables.
            warnings.simplefilter("ignore")
            tbl.create_fts_index("text", replace=True)
        built.append("fts")
    elif _unindexed(tbl, fts) > 0:
        _optimize(tbl, [fts.name], merge=_segments(tbl, fts) >= MAX_DELTAS)
        built.append("fts+")
    if rows >= threshold:
        vec = _index_by_column(tbl, "vector")
        if vec is None or _since_training(tbl, vec) > stale_fraction * rows:
            _materialize_deletions(tbl)
            tbl.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=num_partitions(rows)), replace=True)
            built.append("vector")
        elif _unindexed(tbl, vec) > 0:
            segments = _segments(tbl, vec)
            # A new delta segment; once MAX_VECTOR_DELTAS would be reached, the new rows and every
            # delta merge into one (the trained segment, the first, is left as it is).
            merge = segments - 1 if segments + 1 > MAX_VECTOR_DELTAS else 0
            tbl.to_lance().optimize.optimize_indices(index_names=[vec.name], num_indices_to_merge=merge)
            tbl.checkout_latest()
            built.append("vector+")
    return built


def _materialize_deletions(tbl) -> bool:
    """Rewrite fragments that carry deletion files (a re-ingest's replaced chunks) before training the
    vector index. Lance's IVF training over such fragments is pathologically slow (lancedb 0.40 /
    pylance 14, 1M rows, 2 cores: IVF_SQ and IVF_FLAT both ran past 3 minutes with 1 % of rows deleted,
    where the same table trains in 40 s); the compaction takes ~4 s at 1M rows."""
    ds = tbl.to_lance()
    if not any(f.metadata.deletion_file is not None for f in ds.get_fragments()):
        return False
    ds.optimize.compact_files(materialize_deletions_threshold=0.0)
    tbl.checkout_latest()
    return True


def _since_training(tbl, vec) -> int:
    """Rows added since the vector index was trained: the live rows its trained segment (the oldest)
    does not cover, i.e. the unindexed ones plus those in its delta segments. Compaction never merges
    fragments across index segments, so each fragment belongs to one segment."""
    since = _rows_outside_trained(tbl.to_lance(), vec.name)
    return _unindexed(tbl, vec) if since is None else since


def _rows_outside_trained(ds, index_name: str) -> int | None:
    """`_since_training` from a pylance dataset; None when the manifest does not describe the index."""
    # From the manifest (describe_indices, fragment row counts: ~1 ms), not pylance's index statistics,
    # which read the index files (12-100 ms per ingest at 100k rows, for the same figure).
    desc = next((d for d in ds.describe_indices() if d.name == index_name), None)
    if desc is None or not desc.segments:
        return None
    trained = set(min(desc.segments, key=lambda s: s.created_at).fragment_ids)
    rows = {f.fragment_id: f.metadata.num_rows for f in ds.get_fragments()}
    return sum(rows.values()) - sum(n for i, n in rows.items() if i in trained)


def indexes_current(ds, threshold: int, stale_fraction: float = 0.1) -> bool:
    """Whether `ensure_indexes` would find nothing to do, decided from a pylance dataset's manifest
    alone (no lancedb, no index files): every fragment is covered by a segment of the full-text index
    and, at `threshold` rows or more, of a vector index trained on all but `stale_fraction` of them.
    A re-ingest that changed nothing checks this instead of connecting (`llmfti.pipelines.feature`);
    when in doubt it answers False and `ensure_indexes` decides. tests/test_vector_index.py holds the two
    to the same answer."""
    rows = ds.count_rows()
    if rows == 0:
        return True
    fragments = {f.fragment_id for f in ds.get_fragments()}
    by_column: dict[str, list] = {}
    for desc in ds.describe_indices():
        for column in desc.field_names:
            by_column.setdefault(column, []).append(desc)
    if any(len(by_column.get(c, ())) > 1 for c in ("text", "vector")):
        return False  # two indices on one column: which one ensure_indexes looks at is its call
    by_column = {c: descs[0] for c, descs in by_column.items()}

    def covers_all(desc) -> bool:
        covered = set()
        for segment in desc.segments:
            covered |= set(segment.fragment_ids)
        return fragments <= covered

    if "text" not in by_column or not covers_all(by_column["text"]):
        return False
    if rows >= threshold:
        vec = by_column.get("vector")
        if vec is None or not covers_all(vec):
            return False
        since = _rows_outside_trained(ds, vec.name)
        if since is None or since > stale_fraction * rows:
            return False
    return True


def num_partitions(rows: int) -> int:
    """~sqrt(n) partitions (316 at 100k rows, 1000 at 1M): search.NPROBES of them is ~10% of the
    vectors at 100k and ~3% at 1M."""
    return max(1, int(math.sqrt(rows)))


def has_vector_index(tbl) -> bool:
    return _index_by_column(tbl, "vector") is not None
