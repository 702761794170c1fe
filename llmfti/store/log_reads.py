"""Reading the inference log: filters pushed into LanceDB, the newest N rows without a full read, and
Arrow scans with row ids for analytics (monitoring). A mixin of `llmfti.store.inference_log.InferenceLog`,
which owns `table` (its SystemTable), `store`, and the `_reader`, `_read_lock` and `_pinned` handles."""

from __future__ import annotations

import json
from datetime import timedelta

from llmfti.sources.timeparse import parse_time, utcnow
from llmfti.store.log_schema import JSON_FIELDS, LOG_TABLE, VECTOR_FIELD

# Probe windows of query(limit=N), newest first: the common case (a recent request) reads one.
PROBE_WINDOWS = (timedelta(minutes=15), timedelta(hours=2), timedelta(hours=16), timedelta(days=5), timedelta(days=40), timedelta(days=320))


class LogReads:
    def where(self, deployment: str | None = None, since=None, until=None, request_id: str | None = None) -> str | None:
        """The SQL filter for a deployment, a time window [since, until) and a request id, so LanceDB
        reads only those rows (times: anything `parse_time` accepts)."""
        from llmfti.tables import sql_quote

        clauses = []
        if deployment:
            clauses.append(f"deployment = {sql_quote(deployment)}")
        if request_id:
            clauses.append(f"request_id = {sql_quote(request_id)}")
        if since is not None:
            clauses.append(f"time >= {_ts_literal(since)}")
        if until is not None:
            clauses.append(f"time < {_ts_literal(until)}")
        return " AND ".join(clauses) or None

    def query(self, deployment: str | None = None, since=None, limit: int | None = 100, request_id: str | None = None, *,
              until=None, columns: list[str] | None = None, vectors: bool = False) -> list[dict]:
        """Rows newest first, JSON columns decoded. Filters are pushed into LanceDB; with a `limit`, only
        the newest rows are read (see `_newest`); `columns` reads only those (plus `time`); the query
        vector is left out unless `vectors` (a `logs` listing does not want 384 floats per row)."""
        if columns is not None:
            wanted = list(dict.fromkeys([*columns, "time"]))
        else:
            wanted = [f.name for f in self.table.schema if vectors or f.name != VECTOR_FIELD]
        if limit and not request_id:
            rows = self._newest(deployment, since, until, limit, wanted)
        else:
            rows = self.table.query(self.where(deployment, since, until, request_id), columns=wanted)
        rows.sort(key=lambda r: r["time"], reverse=True)
        for r in rows:
            for key in JSON_FIELDS:
                if key in r:
                    r[key] = _decoded(r[key])
        return rows[:limit] if limit else rows

    def _newest(self, deployment, since, until, limit: int, columns: list[str]) -> list[dict]:
        """The `limit` newest matching rows. Probes `time >= now - w` for growing windows w (the time
        index answers each without a scan) until `limit` rows match or the window covers `since` (or
        everything); sorts only those rows' times, then reads the winners' columns by row id, from the
        same table version. Rows timed in the future are in every window, so none is missed."""
        if not self.table.exists():
            return []
        with self._read_lock:  # one reader handle, refreshed per query and held still until the take
            if self._reader is None:
                self._reader = self.store.db.open_table(LOG_TABLE)
            else:
                self._reader.checkout_latest()
            return self._newest_on(self._reader, deployment, since, until, limit, columns)

    def _newest_on(self, tbl, deployment, since, until, limit: int, columns: list[str]) -> list[dict]:
        import pyarrow.compute as pc

        now = utcnow()
        floor = parse_time(since) if since is not None else None
        for window in PROBE_WINDOWS + (None,):
            lower = None if window is None else now - window
            final = lower is None or (floor is not None and lower <= floor)
            where = self.where(deployment, floor if final else lower, until)
            query = tbl.search().where(where) if where else tbl.search()
            keys = query.select(["time"]).with_row_id(True).limit(None).to_arrow()
            if keys.num_rows >= limit or final:
                break
        if keys.num_rows == 0:
            return []
        top = pc.sort_indices(keys, sort_keys=[("time", "descending")])[:limit]
        ids = keys.column("_rowid").take(top).to_pylist()
        return tbl.take_row_ids(ids).select(columns).to_list()

    def scan(self, deployment: str | None = None, since=None, until=None, columns: list[str] | None = None, *, row_ids: bool = False):
        """The matching rows as an Arrow table (JSON columns still encoded, in no particular order): for
        analytics over many rows, where a dict per row would cost more than the analysis. `row_ids`
        adds `_rowid`, for `take` to read other columns of a sample of them."""
        import pyarrow as pa

        if not self.table.exists():
            empty = self.table.schema.empty_table()
            empty = empty.select(columns) if columns else empty
            return empty.append_column("_rowid", pa.array([], pa.uint64())) if row_ids else empty
        tbl = self.table.table()
        if row_ids:
            # take() reads from this same version: maintenance may compact the log meanwhile, which moves
            # rows to new addresses in later versions (this one stays readable for LOG_KEEP_WITHIN).
            tbl = self.store.db.open_table(LOG_TABLE)
            tbl.checkout(tbl.version)  # read-only at this version, whatever is committed later
            self._pinned = tbl
        q = tbl.search()
        where = self.where(deployment, since, until)
        if where:
            q = q.where(where)
        if columns:
            q = q.select(list(columns))
        if row_ids:
            q = q.with_row_id(True)
        return q.limit(None).to_arrow()

    def take(self, row_ids: list[int], columns: list[str]):
        """Some columns of the rows `scan(row_ids=True)` returned ids for (one random read per row,
        instead of another pass over the table), read from the version that scan read."""
        if not row_ids:
            return self.table.schema.empty_table().select(columns)
        tbl = self._pinned if self._pinned is not None else self.table.table()
        return tbl.take_row_ids([int(i) for i in row_ids]).select(list(columns)).to_arrow()


def _ts_literal(value) -> str:
    """A SQL timestamp literal in UTC, as LanceDB's filter parser reads it."""
    # isoformat, not strftime: %Y writes year 1 as '1', which is no timestamp literal.
    return "TIMESTAMP '" + parse_time(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z'"


def _decoded(text):
    """A JSON column's value; a row written before every request was logged as an object (a JSON
    string body stored as its raw text) is returned as that text, never an error for the whole read."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {"undecodable": str(text)[:2000]}
