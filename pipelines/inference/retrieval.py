"""Retrieval at a pinned feature-group commit, from a query vector computed beforehand (so the
pipeline can time query embedding and retrieval as separate stages)."""

from __future__ import annotations

import threading

from llmfti.errors import ConfigError
from llmfti.tables import sql_quote
from llmfti.transforms.model_dependent import Context


class PinnedTables:
    """Read-only LanceDB table handles per commit of one feature group, opened once and shared."""

    def __init__(self, fg):
        self.fg = fg
        self._by_commit: dict[int, object] = {}
        self._latest = None
        self._lock = threading.Lock()

    def latest_commit(self) -> int:
        """The latest commit, from one kept-open handle refreshed under a lock (~0.1 ms, no reopen)."""
        with self._lock:
            if self._latest is None:
                self._latest = self.fg.table()
            else:
                self._latest.checkout_latest()
            return self._latest.version

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
    """Top-k rows (chunk_id, doc_id, source, text, score), best first; k=0 retrieves nothing."""
    from llmfti.store.search import query_table

    if k <= 0:
        return []
    return query_table(table, vector, query_text, k, hybrid=hybrid, where=where, columns=["chunk_id", "doc_id", "source", "heading_path", "text"])


def as_contexts(rows: list[dict]) -> list[Context]:
    return [Context(chunk_id=r["chunk_id"], text=r["text"], score=r["score"], source=r["source"]) for r in rows]
