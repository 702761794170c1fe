"""The inference log: every request's untransformed input, on-demand features, retrieved chunks
(ids, scores, feature-group commit), prompt fingerprint (and optionally the encoded prompt text),
output, token counts, per-stage timings, status and error.

Durability without blocking: a request appends its row to a local segment file (write + fsync, a
few hundred microseconds) and returns; a background thread moves closed segments into the LanceDB
table in batches with an idempotent merge on `request_id`, then deletes them. A server killed with
SIGKILL loses no row: its segments are flushed by the next process that opens the log.
"""

from __future__ import annotations

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
        ]
    )


JSON_FIELDS = ("request", "features", "retrieved", "timings_ms")


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
    def query(self, deployment: str | None = None, since=None, limit: int | None = 100, request_id: str | None = None) -> list[dict]:
        from llmfti.tables import sql_quote

        clauses = []
        if deployment:
            clauses.append(f"deployment = {sql_quote(deployment)}")
        if request_id:
            clauses.append(f"request_id = {sql_quote(request_id)}")
        rows = self.table.query(" AND ".join(clauses) or None)
        if since is not None:
            cutoff = parse_time(since)
            rows = [r for r in rows if r["time"] >= cutoff]
        rows.sort(key=lambda r: r["time"], reverse=True)
        for r in rows:
            for key in JSON_FIELDS:
                r[key] = json.loads(r[key]) if r.get(key) else None
        return rows[:limit] if limit else rows


