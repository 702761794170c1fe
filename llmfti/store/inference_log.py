"""The inference log: every request's untransformed input, on-demand features, retrieved chunks
(ids, scores, feature-group commit), prompt fingerprint (and optionally the encoded prompt text),
output, token counts, per-stage timings, status and error.

Durability without blocking: a request appends its row to a local segment file (write + fsync, a
few hundred microseconds) and returns; a background thread moves closed segments into the LanceDB
table in batches with an idempotent merge on `request_id`, then deletes them. A server killed with
SIGKILL loses no row: its segments are flushed by the next process that opens the log.

The served query embedding (`query_vector`, float32, as long as the feature group's embedder makes
it) is logged too, so monitoring measures drift on the vectors actually served. On the request path
it is written to the segment as base64 of its float32 bytes (bench/monitor.py: ~20 us of encoding per
request, where a JSON list of 384 floats costs ~300 us) and decoded by the background flush. `query`
leaves it out unless `vectors=True`.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from pathlib import Path

from llmfti.background import Periodic
from llmfti.logs import get_logger
from llmfti.sources.timeparse import parse_time, utcnow

LOG_TABLE = "_inference_log"
logger = get_logger(__name__)


def log_schema():
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("request_id", pa.string(), nullable=False), pa.field("time", ts), pa.field("deployment", pa.string()),
            pa.field("deployment_version", pa.int32()), pa.field("model", pa.string()), pa.field("feature_group", pa.string()),
            pa.field("commit", pa.int64()), pa.field("commit_evaluated", pa.bool_()), pa.field("prompt_mode", pa.string()), pa.field("request", pa.string()), pa.field("features", pa.string()),
            pa.field("retrieved", pa.string()), pa.field("prompt_fingerprint", pa.string()), pa.field("prompt_text", pa.string()),
            pa.field("output", pa.string()), pa.field("prompt_tokens", pa.int32()), pa.field("completion_tokens", pa.int32()),
            pa.field("timings_ms", pa.string()), pa.field("status", pa.string()), pa.field("error", pa.string()),
            # Variable length: each feature-group version has its own embedder dimension.
            pa.field("query_vector", pa.list_(pa.float32())),
        ]
    )


JSON_FIELDS = ("request", "features", "retrieved", "timings_ms")
VECTOR_FIELD = "query_vector"
_VECTOR_B64 = "query_vector_b64"  # the segment-file form of VECTOR_FIELD (float32 bytes, base64)


def _encode_vector(row: dict) -> None:
    """Replace an array-like `query_vector` by its compact segment-file form (cheap: no float repr)."""
    vec = row.pop(VECTOR_FIELD, None)
    if vec is None:
        return
    if hasattr(vec, "astype"):  # numpy array: its float32 bytes
        raw = vec.astype("<f4", copy=False).tobytes()
    else:  # a plain list (tests, other writers)
        import numpy as np

        raw = np.asarray(vec, dtype="<f4").tobytes()
    row[_VECTOR_B64] = base64.b64encode(raw).decode("ascii")


def _decode_vector(row: dict) -> None:
    """The segment-file form back to a list of floats for the Arrow column (background flush)."""
    raw = row.pop(_VECTOR_B64, None)
    if raw is not None:
        import numpy as np

        row[VECTOR_FIELD] = np.frombuffer(base64.b64decode(raw), dtype="<f4").tolist()


def _report_flush_failure(exc: Exception) -> None:
    # A failed flush keeps its segments on disk; the next tick retries them. The traceback only at
    # debug level: a storage outage repeats this every tick.
    logger.warning("inference log flush failed (rows stay buffered on disk; retrying every tick): %s: %s", type(exc).__name__, exc)
    logger.debug("inference log flush failure", exc_info=exc)


def _owner(name: str) -> tuple[int | None, str | None]:
    """(pid, uid) of the process holding a buffer file: the flusher's for a claimed file, else the writer's."""
    if ".flushing-" in name:
        pid, _, uid = name.rsplit(".flushing-", 1)[1].partition("-")
    else:
        pid, uid = (name.split("-") + ["", ""])[:2]
    return (int(pid), uid) if pid.isdigit() else (None, None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InferenceLog:
    def __init__(self, store, *, flush_interval_s: float = 1.0):
        from llmfti.tables import SystemTable

        self.store = store
        self.table = SystemTable(store.home, LOG_TABLE, log_schema(), db=store.db)
        self.dir = Path(store.home.root) / "buffers" / "inference_log"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._uid = uuid.uuid4().hex[:8]  # segments are named PID-UID-SEQ: one writer instance each
        self._segment = self._open_segment()
        self._flusher = Periodic(self.flush, flush_interval_s, "llmfti-inference-log", _report_flush_failure)

    def _open_segment(self):
        self._seq += 1
        path = self.dir / f"{os.getpid()}-{self._uid}-{self._seq:06d}.jsonl.open"
        return open(path, "a", encoding="utf-8")

    # --- write path (request thread) --------------------------------------------------------------
    def append(self, record: dict) -> None:
        row = dict(record)
        row.setdefault("time", utcnow().isoformat())
        for key in JSON_FIELDS:
            if not isinstance(row.get(key), str):
                row[key] = json.dumps(row.get(key), default=str)
        _encode_vector(row)
        line = json.dumps(row, default=str) + "\n"
        with self._lock:
            self._segment.write(line)
            self._segment.flush()
            os.fsync(self._segment.fileno())

    # --- background flush -------------------------------------------------------------------------
    def start(self) -> "InferenceLog":
        self._flusher.start()
        return self

    def _rotate(self) -> None:
        with self._lock:
            if self._segment.tell() == 0:
                return
            old = Path(self._segment.name)
            self._segment.close()
            old.rename(old.with_suffix(""))  # '.jsonl.open' -> '.jsonl': closed, ready to flush
            self._segment = self._open_segment()

    def _flushable(self) -> list[Path]:
        """Claim what this instance may flush: its own closed segments, and any segment (open, closed
        or half-flushed) of a dead process. A claim is an atomic rename, so two flushers (several
        servers on one home, or two logs in one process) never read or delete the same file."""
        candidates = []
        for path in self.dir.iterdir():
            pid, uid = _owner(path.name)
            if pid is None or path == Path(self._segment.name):
                continue
            # Our own closed segments, and our own claims left by a flush that failed (retried now).
            mine = uid == self._uid and (path.name.endswith(".jsonl") or ".flushing-" in path.name)
            if mine or not _pid_alive(pid):
                candidates.append(path)
        claimed = []
        for path in sorted(candidates):
            base = path.name.split(".jsonl")[0]
            target = self.dir / f"{base}.jsonl.flushing-{os.getpid()}-{self._uid}"
            if path == target:
                claimed.append(path)
                continue
            try:
                path.rename(target)
            except FileNotFoundError:
                continue  # another flusher claimed it first
            claimed.append(target)
        return claimed

    def flush(self) -> int:
        """Move every closed segment into the table; returns the number of rows written."""
        with self._flush_lock:
            self._rotate()
            written = 0
            for path in self._flushable():
                rows = []
                for line in path.read_text(encoding="utf-8").split("\n"):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError:
                            continue  # a torn last line from a crash mid-write: the response was never sent either
                if rows:
                    for r in rows:
                        r["time"] = parse_time(r["time"])
                        _decode_vector(r)
                    # Idempotent: a crash between the write and the unlink must not duplicate rows.
                    self.table.insert_new(rows, "request_id")
                    written += len(rows)
                path.unlink()
            return written

    def close(self) -> None:
        self._flusher.stop()
        self.flush()
        with self._lock:
            name = Path(self._segment.name)
            self._segment.close()
            if name.exists() and name.stat().st_size == 0:
                name.unlink()

    # --- read -------------------------------------------------------------------------------------
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
        """Rows newest first, JSON columns decoded. Filters are pushed into LanceDB; `columns` reads only
        those (plus `time`); the query vector is left out unless `vectors` (a `logs` listing does not
        want 384 floats per row)."""
        if columns is not None:
            wanted = list(dict.fromkeys([*columns, "time"]))
        else:
            wanted = [f.name for f in self.table.schema if vectors or f.name != VECTOR_FIELD]
        rows = self.table.query(self.where(deployment, since, until, request_id), columns=wanted)
        rows.sort(key=lambda r: r["time"], reverse=True)
        for r in rows:
            for key in JSON_FIELDS:
                if key in r:
                    r[key] = json.loads(r[key]) if r.get(key) else None
        return rows[:limit] if limit else rows

    def scan(self, deployment: str | None = None, since=None, until=None, columns: list[str] | None = None, *, row_ids: bool = False):
        """The matching rows as an Arrow table (JSON columns still encoded, in no particular order): for
        analytics over many rows, where a dict per row would cost more than the analysis. `row_ids`
        adds `_rowid`, for `take` to read other columns of a sample of them."""
        import pyarrow as pa

        if not self.table.exists():
            empty = self.table.schema.empty_table()
            empty = empty.select(columns) if columns else empty
            return empty.append_column("_rowid", pa.array([], pa.uint64())) if row_ids else empty
        q = self.table.table().search()
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
        instead of another pass over the table). Row ids hold until the table is compacted."""
        if not row_ids:
            return self.table.schema.empty_table().select(columns)
        return self.table.table().take_row_ids([int(i) for i in row_ids]).select(list(columns)).to_arrow()


def _ts_literal(value) -> str:
    """A SQL timestamp literal in UTC, as LanceDB's filter parser reads it."""
    # isoformat, not strftime: %Y writes year 1 as '1', which is no timestamp literal.
    return "TIMESTAMP '" + parse_time(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z'"
