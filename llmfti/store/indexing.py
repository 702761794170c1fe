"""Index maintenance for feature-group tables.

- Full-text index on `text` (for hybrid search), rebuilt when rows are not covered by it.
- ANN vector index (IVF_HNSW_SQ, cosine) once the table reaches `threshold` rows, rebuilt when more
  than `stale_fraction` of rows are unindexed. Below the threshold, search is exact (flat).

Index builds are separate table versions holding the same data; ingest reports the version after
maintenance as its commit so reads pinned to it get the indices too.
"""

from __future__ import annotations

import math
import warnings


def _index_by_column(tbl, column: str):
    for idx in tbl.list_indices():
        if column in list(idx.columns):
            return idx
    return None


def _unindexed(tbl, idx) -> int:
    stats = tbl.index_stats(idx.name)
    return int(getattr(stats, "num_unindexed_rows", 0) or 0) if stats else tbl.count_rows()


def ensure_indexes(tbl, threshold: int, stale_fraction: float = 0.1) -> list[str]:
    """Create or refresh indices as needed; returns what was (re)built."""
    from lancedb.index import IvfHnswSq

    built = []
    rows = tbl.count_rows()
    if rows == 0:
        return built
    fts = _index_by_column(tbl, "text")
    if fts is None or _unindexed(tbl, fts) > 0:
        with warnings.catch_warnings():
            # create_fts_index is the table-level API lancedb 0.40 still documents for local tables.
            warnings.simplefilter("ignore")
            tbl.create_fts_index("text", replace=True)
        built.append("fts")
    if rows >= threshold:
        vec = _index_by_column(tbl, "vector")
        if vec is None or _unindexed(tbl, vec) > stale_fraction * rows:
            # ~sqrt(n) partitions keeps both training time and probe cost balanced on small machines.
            partitions = max(1, int(math.sqrt(rows) / 2))
            tbl.create_index("vector", config=IvfHnswSq(distance_type="cosine", num_partitions=partitions), replace=True)
            built.append("vector")
    return built


def has_vector_index(tbl) -> bool:
    return _index_by_column(tbl, "vector") is not None
