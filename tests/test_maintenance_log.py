"""The inference log's cost stays flat: `query(limit=N)` reads only the newest rows, the flush merges
through a request_id index, and bounded background maintenance keeps versions and fragments bounded."""

from datetime import datetime, timedelta, timezone

import pytest

from llmfti.store import FeatureStore
from llmfti.store.inference_log import InferenceLog, LogMaintenance


def row(i, when, deployment="d"):
    return {"request_id": f"r{i}", "deployment": deployment, "deployment_version": 1, "request": {"question": str(i)},
            "status": "ok", "time": when.isoformat()}


@pytest.fixture
def log(tmp_path):
    log = InferenceLog(FeatureStore(tmp_path / "home"), maintenance=False)
    yield log
    log.close()


def test_limited_query_returns_the_newest_rows_and_reads_only_those(log, monkeypatch):
    import lancedb.table

    now = datetime.now(timezone.utc)
    # Old rows over a year, a recent burst, one row from a clock ahead of ours, another deployment.
    for i in range(40):
        log.append(row(i, now - timedelta(days=400 - 9 * i)))
    for i in range(40, 45):
        log.append(row(i, now - timedelta(minutes=50 - i)))
    log.append(row(99, now + timedelta(minutes=5)))
    log.append(row(100, now, deployment="other"))
    log.flush()
    taken = []
    real_take = lancedb.table.LanceTable.take_row_ids

    def spy(self, ids):
        taken.append(len(ids))
        return real_take(self, ids)

    monkeypatch.setattr(lancedb.table.LanceTable, "take_row_ids", spy)
    newest = [r["request_id"] for r in log.query("d", limit=4)]
    assert newest == ["r99", "r44", "r43", "r42"]
    assert taken == [4]  # full rows are read for the 4 winners only
    assert [r["request_id"] for r in log.query("d", limit=3, since=now - timedelta(days=300))] == ["r99", "r44", "r43"]
    # Fewer matches than the limit: the probes widen to everything, still newest first.
    old = [r["request_id"] for r in log.query("d", limit=100, until=now - timedelta(days=200))]
    assert old == [f"r{i}" for i in range(22, -1, -1)]
    assert log.query("other", limit=5)[0]["request"] == {"question": "100"}
    assert log.query("nobody", limit=5) == []


def test_flush_creates_the_scalar_indices_and_stays_idempotent(log):
    now = datetime.now(timezone.utc)
    for i in range(5):
        log.append(row(i, now))
    log.flush()
    tbl = log.table.table()
    indexed = {c for idx in tbl.list_indices() for c in idx.columns}
    assert {"request_id", "time", "deployment"} <= indexed
    log.table.insert_new([{**row(1, now), "request": "{}", "time": now}], "request_id")  # a re-delivered row
    assert tbl.count_rows() == 5


def test_background_maintenance_bounds_versions_and_fragments(tmp_path):
    store = FeatureStore(tmp_path / "home")
    now = datetime.now(timezone.utc)

    def run(maintenance, ticks=40):
        log = InferenceLog(store, maintenance=maintenance)
        for i in range(ticks):
            log.append(row(f"{id(log)}-{i}", now))
            log._tick()  # what the flusher thread does every flush_interval_s
        tbl = log.table.table()
        stats = (len(tbl.list_versions()), len(tbl.to_lance().get_fragments()))
        log.close()
        return stats

    unbounded = run(False)
    assert unbounded[0] > 40 and unbounded[1] >= 40  # a version and a fragment per flush, forever
    store.db.drop_table("_inference_log")
    bounded = run(LogMaintenance(interval_s=0.0, keep_within=timedelta(0)))
    assert bounded[0] <= 6 and bounded[1] <= 10, bounded
    log = InferenceLog(store, maintenance=False)
    assert len(log.query(limit=None)) == 40  # nothing lost to compaction or pruning
    log.close()
