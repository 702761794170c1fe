"""The inference log: every request's untransformed input, on-demand features, retrieved chunks
(ids, scores, feature-group commit), prompt fingerprint (and optionally the encoded prompt text),
output, token counts, per-stage timings, status and error.

Durability without blocking: a request appends its row to a local segment file (write + fsync, a
few hundred microseconds) and returns; a background thread moves closed segments into the LanceDB
table in batches with an idempotent merge on `request_id`, then deletes them. A server killed with
SIGKILL loses no row: its segments are flushed by the next process that opens the log.

Segments live on the serving host's local disk (`ProjectHome.buffers_dir`: `<home>/buffers`, or
`$LLMFTI_BUFFER_DIR`; on an object-store home, the host's cache), and are named
`HOST~PID-UID-SEQ.jsonl[.open]`, HOST being `$LLMFTI_HOST_ID` (default: the host name). Whose
segments a flusher may take:
- its own closed segments (and its own claims left by a failed flush);
- on its own host, those of a dead process (the pid check only means something on the host that
  wrote them);
- of another host (several `llmfti serve` replicas sharing one buffer folder, e.g. on NFS), only
  after that writer's heartbeat file (`HOST~PID-UID.heartbeat`, touched by its flusher every tick)
  is older than the takeover window (`$LLMFTI_LOG_TAKEOVER_S`, default 300 s): a pid from another
  host says nothing, and taking a live writer's open segment would lose the rows it appends next.
Names without a host (written before host ids) are treated as this host's.

`origin` says which path served a row: "online" (the service, `llmfti ask`) or "batch"
(`llmfti batch-infer`, `llmfti.pipelines.batch_inference`).

The served query embedding (`query_vector`, float32, as long as the feature group's embedder makes
it) is logged too, so monitoring measures drift on the vectors actually served. On the request path
it is written to the segment as base64 of its float32 bytes (bench/monitor.py: ~20 us of encoding per
request, where a JSON list of 384 floats costs ~300 us) and decoded by the background flush. `query`
leaves it out unless `vectors=True`.

Cost stays flat as the log grows (bench/growth.py):
- indices: BTREE on `request_id` (the flush's idempotent merge looks rows up in it instead of
  scanning the table) and on `time`, BITMAP on `deployment`, created on the first flush;
- `query(limit=N)` reads only the newest rows: it asks for `time >= now - w` with w growing
  (15 min, 2 h, 16 h, 5 d, 40 d, 320 d, then everything) until N rows match, sorts those keys and
  fetches the N rows by row id; a `logs --limit 20` no longer reads the whole table;
- bounded background maintenance on the flush thread (`LogMaintenance`): every `interval_s`, small
  fragments are compacted into fragments of LOG_TARGET_ROWS (16k) (bounded work: full fragments are not
  rewritten), new rows go into the indices as delta segments (merged once MERGE_SEGMENTS pile up),
  and versions superseded more than `keep_within` ago are pruned (nothing pins log versions), so
  versions and fragments are bounded by the policy, not by uptime.

This module is the write side (segments, flush, takeover); the table's schema is
`llmfti.store.log_schema`, reads are `llmfti.store.log_reads`, maintenance `llmfti.store.log_maintenance`.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from pathlib import Path

from llmfti.background import Periodic
from llmfti.logs import get_logger
from llmfti.sources.timeparse import parse_time, utcnow
from llmfti.store.log_maintenance import LOG_KEEP_WITHIN, LOG_TARGET_ROWS, LogMaintenance, ensure_log_indexes
from llmfti.store.log_reads import LogReads
from llmfti.store.log_schema import JSON_FIELDS, LOG_TABLE, VECTOR_FIELD, log_schema

# Re-exported: callers import the log's names from here.
__all__ = ["InferenceLog", "LogMaintenance", "ensure_log_indexes", "log_schema", "host_id", "LOG_TABLE", "LOG_TARGET_ROWS", "LOG_KEEP_WITHIN"]

logger = get_logger(__name__)


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


TAKEOVER_ENV = "LLMFTI_LOG_TAKEOVER_S"
DEFAULT_TAKEOVER_S = 300.0
HOST_ENV = "LLMFTI_HOST_ID"
HEARTBEAT = ".heartbeat"


def host_id() -> str:
    """This host's id in segment names: `$LLMFTI_HOST_ID`, else the host name (made file-name safe)."""
    import re
    import socket

    raw = os.environ.get(HOST_ENV) or socket.gethostname() or "localhost"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw).replace(".jsonl", "_jsonl")[:128]


def _owner(name: str) -> tuple[str | None, int | None, str | None]:
    """(host, pid, uid) of the process holding a buffer file: the flusher's for a claimed file, else the
    writer's. The host is None for names written before host ids (read as this host's)."""
    part = name.rsplit(".flushing-", 1)[1] if ".flushing-" in name else name
    host, sep, rest = part.partition("~")
    if not sep:
        host, rest = None, part
    pid, _, tail = rest.partition("-")
    uid = tail.split("-", 1)[0].split(".", 1)[0]
    return (host, int(pid), uid) if pid.isdigit() else (None, None, None)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InferenceLog(LogReads):
    def __init__(self, store, *, flush_interval_s: float = 1.0, maintenance: LogMaintenance | None | bool = True,
                 origin: str = "online", host: str | None = None, takeover_after_s: float | None = None):
        from llmfti.tables import SystemTable

        self.store = store
        self.table = SystemTable(store.home, LOG_TABLE, log_schema(), db=store.db)
        self.dir = Path(store.home.buffers_dir) / "inference_log"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self.origin = origin
        self.host = host or host_id()
        self.takeover_after_s = float(os.environ.get(TAKEOVER_ENV) or DEFAULT_TAKEOVER_S) if takeover_after_s is None else takeover_after_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._uid = uuid.uuid4().hex[:8]  # segments are named HOST~PID-UID-SEQ: one writer instance each
        self._writer = f"{self.host}~{os.getpid()}-{self._uid}"
        self._heartbeat = self.dir / f"{self._writer}{HEARTBEAT}"
        self._last_beat = 0.0
        self._beat()
        self._segment = self._open_segment()
        self._indexed = False
        self._pinned = None  # the table handle of the last scan(row_ids=True), for take()
        self._reader = None  # query()'s own handle: the flusher moves the shared one to new versions
        self._read_lock = threading.Lock()
        # Maintenance runs on the flusher thread (start()), never on a caller's flush().
        self.maintenance = LogMaintenance() if maintenance is True else (maintenance or None)
        self._flusher = Periodic(self._tick, flush_interval_s, "llmfti-inference-log", _report_flush_failure)

    def _open_segment(self):
        self._seq += 1
        path = self.dir / f"{self._writer}-{self._seq:06d}.jsonl.open"
        return open(path, "a", encoding="utf-8")

    def _beat(self) -> None:
        """Say this writer is alive (other hosts never take over its segments while this is fresh)."""
        self._last_beat = time.monotonic()
        try:
            self._heartbeat.touch()
        except OSError as exc:  # a full disk: the next tick tries again
            logger.debug("inference log heartbeat failed: %s", exc)

    # --- write path (request thread) --------------------------------------------------------------
    def append(self, record: dict) -> None:
        row = dict(record)
        row.setdefault("time", utcnow().isoformat())
        row.setdefault("origin", self.origin)
        for key in JSON_FIELDS:
            if not isinstance(row.get(key), str):
                row[key] = json.dumps(row.get(key), default=str)
        _encode_vector(row)
        line = json.dumps(row, default=str) + "\n"
        if time.monotonic() - self._last_beat > 10.0:  # a writer that nobody flushes (no start()) still says it lives
            self._beat()
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
        """Claim what this instance may flush (see the module doc): its own closed segments, any
        segment (open, closed or half-flushed) of a dead process of this host, and those of another
        host's writer whose heartbeat is older than the takeover window. A claim is an atomic rename,
        so two flushers (several servers on one home, or two logs in one process) never read or delete
        the same file."""
        candidates = []
        names = {p.name for p in self.dir.iterdir()}
        for name in names:
            if name.endswith(HEARTBEAT):
                continue
            host, pid, uid = _owner(name)
            path = self.dir / name
            if pid is None or path == Path(self._segment.name):
                continue
            # Our own closed segments, and our own claims left by a flush that failed (retried now).
            mine = uid == self._uid and host in (None, self.host) and (name.endswith(".jsonl") or ".flushing-" in name)
            if mine or self._orphaned(host, pid, uid, names):
                candidates.append(path)
        claimed = []
        for path in sorted(candidates):
            base = path.name.split(".jsonl")[0]
            target = self.dir / f"{base}.jsonl.flushing-{self._writer}"
            if path == target:
                claimed.append(path)
                continue
            try:
                path.rename(target)
            except FileNotFoundError:
                continue  # another flusher claimed it first
            claimed.append(target)
        return claimed

    def _orphaned(self, host: str | None, pid: int, uid: str, names: set[str]) -> bool:
        """Whether the writer (or flusher) `host~pid-uid` is gone, so its files are ours to flush."""
        if host is None or host == self.host:
            return not _pid_alive(pid)
        writer = f"{host}~{pid}-{uid}"
        beat = _mtime(self.dir / f"{writer}{HEARTBEAT}")
        if beat is None:  # it never beat (or its heartbeat was removed): judge by its newest file
            beat = max((m for n in names if writer in n and (m := _mtime(self.dir / n)) is not None), default=0.0)
        return time.time() - beat > self.takeover_after_s

    def _reap_heartbeats(self) -> None:
        """Remove heartbeat files of writers that are gone and left no file behind."""
        names = {p.name for p in self.dir.iterdir()}
        for name in names:
            if not name.endswith(HEARTBEAT) or name == self._heartbeat.name:
                continue
            writer = name[: -len(HEARTBEAT)]
            host, pid, uid = _owner(writer + "-0.jsonl")
            if pid is None or any(n != name and writer in n for n in names):
                continue
            if self._orphaned(host, pid, uid, names):
                (self.dir / name).unlink(missing_ok=True)

    def _tick(self) -> None:
        self.flush()
        if self.maintenance is not None and self.table.exists():
            tbl = self.table.table()
            if self.maintenance.due(tbl):
                try:
                    self.maintenance.run(tbl)
                except Exception as exc:  # another writer's commit may conflict: retried next interval
                    logger.warning("inference log maintenance failed (retried later): %s: %s", type(exc).__name__, exc)

    def _ensure_indexes(self) -> bool:
        try:
            ensure_log_indexes(self.table.table())
            return True
        except Exception as exc:  # another process created one at the same time: check again next flush
            logger.debug("inference log indices not created yet (%s); retrying at the next flush", exc)
            return False

    def flush(self) -> int:
        """Move every closed segment into the table; returns the number of rows written."""
        with self._flush_lock:
            self._beat()
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
                    # Idempotent: a crash between the write and the unlink must not duplicate rows. The
                    # merge looks request ids up in their BTREE index, so its cost does not grow with the log.
                    self.table.insert_new(rows, "request_id")
                    written += len(rows)
                    if not self._indexed:
                        self._indexed = self._ensure_indexes()
                path.unlink()
            self._reap_heartbeats()
            return written

    def close(self) -> None:
        """Flush and close; a second close (an app whose lifespan is shut down twice) does nothing."""
        if self._segment.closed:
            return
        self._flusher.stop()
        self.flush()
        with self._lock:
            name = Path(self._segment.name)
            self._segment.close()
            if name.exists() and name.stat().st_size == 0:
                name.unlink()
            if not any(self._writer in p.name for p in self.dir.iterdir() if p != self._heartbeat):
                self._heartbeat.unlink(missing_ok=True)  # nothing of ours left: no one needs to know we lived

