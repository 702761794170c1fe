"""Retrieval at a pinned feature-group commit, from a query vector computed beforehand (so the
pipeline can time query embedding and retrieval as separate stages)."""

from __future__ import annotations

import threading

from llmfti.errors import ConfigError
from llmfti.store.feature_store import sql_quote
from llmfti.transforms.model_dependent import Context


class PinnedTables:
    """Read-only LanceDB table handles per commit of one feature group, opened once and shared."""

    def __init__(self, fg):
        self.fg = fg
        self._by_commit: dict[int, object] = {}
        self._lock = threading.Lock()

    def latest_commit(self) -> int:
        return self.fg.table().version

    def at(self, commit: int):
        with self._lock:
            if commit not in self._by_commit:
                tbl = self.fg.table()
                if tbl.version != commit:
                    tbl.checkout(commit)
                self._by_commit[commit] = tbl
            return self._by_commit[commit]


def equality_filter(filters: dict[str, str] | None, allowed: list[str]) -> str | None:
    if not filters:
        return None
    bad = sorted(set(filters) - set(allowed))
    if bad:
        raise ConfigError(f"filters on {bad} are not allowed by this deployment (allowed: {allowed or 'none'})")
    return " AND ".join(f"{col} = {sql_quote(str(val))}" for col, val in sorted(filters.items()))


def retrieve(table, vector, query_text: str, k: int, *, hybrid: bool = False, where: str | None = None) -> list[dict]:
    """Top-k rows (chunk_id, doc_id, source, text, score), best first."""
    from llmfti.store.indexing import has_vector_index
    from llmfti.store.search import NPROBES, REFINE_FACTOR

    if k <= 0:
        return []
    if hybrid:
        builder = table.search(query_type="hybrid").vector(vector).text(query_text)
    else:
        builder = table.search(vector).distance_type("cosine")
        if has_vector_index(table):
            builder = builder.nprobes(NPROBES).refine_factor(REFINE_FACTOR)
    if where:
        builder = builder.where(where, prefilter=True)
    cols = ["chunk_id", "doc_id", "source", "heading_path", "text"] + ([] if hybrid else ["_distance"])
    rows = builder.select(cols).limit(k).to_list()
    for r in rows:
        r["score"] = round(float(r["_relevance_score"]) if hybrid else 1.0 - float(r["_distance"]), 6)
    return rows


def as_contexts(rows: list[dict]) -> list[Context]:
    return [Context(chunk_id=r["chunk_id"], text=r["text"], score=r["score"], source=r["source"]) for r in rows]
