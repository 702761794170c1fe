"""Retrieval at a pinned feature-group commit, from a query vector computed beforehand (so the
pipeline can time query embedding and retrieval as separate stages)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from llmfti.errors import ConfigError
from llmfti.logs import get_logger
from llmfti.tables import sql_quote

logger = get_logger(__name__)


MAX_COMMITS = 8  # open handles per feature group: the served commit, a few recent ones, evals of new ones


class PinnedTables:
    """Read-only LanceDB table handles per commit of one feature group, opened once and shared, at
    most `max_commits` of them (least recently used closed first: a `latest` deployment moves to a new
    commit with every evaluated ingest, and each handle holds its version's metadata in memory)."""

    def __init__(self, fg, max_commits: int = MAX_COMMITS):
        self.fg = fg
        self.max_commits = max(1, max_commits)
        self._by_commit: OrderedDict[int, object] = OrderedDict()
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
            if commit in self._by_commit:
                self._by_commit.move_to_end(commit)
                return self._by_commit[commit]
            tbl = self.fg.table()
            if tbl.version != commit:
                tbl.checkout(commit)
            self._by_commit[commit] = tbl
            while len(self._by_commit) > self.max_commits:
                self._by_commit.popitem(last=False)  # a request still using it keeps its own reference
            return tbl

    def commits(self) -> list[int]:
        with self._lock:
            return list(self._by_commit)


def equality_filter(filters: dict[str, str] | None, allowed: list[str], kinds: dict[str, str] | None = None) -> str | None:
    """The SQL `where` of a request's equality filters. `kinds` (column -> 'string' | 'integer' |
    'boolean', from the table schema) types each literal, so a value that cannot match its column is
    the client's 422 here rather than a search-engine error."""
    if not filters:
        return None
    bad = sorted(set(filters) - set(allowed))
    if bad:
        raise ConfigError(f"filters on {bad} are not allowed by this deployment (allowed: {allowed or 'none'})")
    kinds = kinds or {}
    return " AND ".join(f"{col} = {_literal(col, str(val), kinds.get(col, 'string'))}" for col, val in sorted(filters.items()))


def _literal(col: str, value: str, kind: str) -> str:
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
            raise ConfigError(f"filters.{col} must be an integer, got {value[:40]!r}")
        return str(int(value))
    if kind == "boolean":
        if value.strip().lower() not in ("true", "false"):
            raise ConfigError(f"filters.{col} must be true or false, got {value[:40]!r}")
        return value.strip().lower()
    return sql_quote(value)


def retrieve(table, vector, query_text: str, k: int, *, hybrid: bool = False, where: str | None = None) -> list[dict]:
    """`llmfti.store.retrieval.retrieve` (the one training datasets use too), with a client's bad
    filter turned into a clean error."""
    from llmfti.store import retrieval

    try:
        return retrieval.retrieve(table, vector, query_text, k, hybrid=hybrid, where=where)
    except ConfigError as exc:
        if not where:
            raise
        # The search engine's message names its source files and the table schema: the server log
        # keeps it (with the request id); the client learns only that its filters did not apply.
        logger.error("filter %r failed in the search engine: %s", where, exc)
        raise ConfigError("the filters could not be applied to this feature group (details are in the server log)") from None

