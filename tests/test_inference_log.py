"""The inference log's durable buffer: concurrent flushers never lose or duplicate a row, and the
segments of a dead process are flushed by the next one."""

import json
import threading

from llmfti.store import FeatureStore
from llmfti.store.inference_log import InferenceLog


def row(i):
    return {"request_id": f"r{i}", "deployment": "d", "deployment_version": 1, "request": {"question": str(i)}, "status": "ok"}


def test_two_logs_on_one_home_flushing_concurrently(tmp_path):
    store = FeatureStore(tmp_path / "home")
    a, b = InferenceLog(store, flush_interval_s=0.01).start(), InferenceLog(store, flush_interval_s=0.01).start()

    def write(log, start):
        for i in range(start, start + 100):
            log.append(row(i))
            if i % 10 == 0:
                log.flush()

    threads = [threading.Thread(target=write, args=(a, 0)), threading.Thread(target=write, args=(b, 100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    b.close()
    reader = InferenceLog(store)
    ids = [r["request_id"] for r in reader.query(limit=None)]
    reader.close()
    assert sorted(ids) == sorted(f"r{i}" for i in range(200))


def test_segments_of_a_dead_process_are_flushed(tmp_path):
    store = FeatureStore(tmp_path / "home")
    buffers = tmp_path / "home" / "buffers" / "inference_log"
    buffers.mkdir(parents=True)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    lines = "\n".join(json.dumps({**row(i), "time": "2026-01-01T00:00:00+00:00", "request": "{}"}) for i in range(3))
    (buffers / f"{dead_pid}-deadbeef-000001.jsonl.open").write_text(lines + '\n{"torn')  # killed mid-write
    (buffers / f"{dead_pid}-deadbeef-000000.jsonl").write_text(json.dumps({**row(9), "time": "2026-01-01T00:00:00+00:00", "request": "{}"}) + "\n")
    log = InferenceLog(store)
    assert log.flush() == 4
    assert sorted(r["request_id"] for r in log.query(limit=None)) == ["r0", "r1", "r2", "r9"]
    log.close()
    assert not [p for p in buffers.iterdir() if str(dead_pid) in p.name]


def test_close_twice_is_harmless(tmp_path):
    """An app whose lifespan ends twice (a test client and an ASGI fuzzer both shut it down) closed its
    log twice, and the second close wrote to a closed segment."""
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(tmp_path / "home"))
    log.close()
    log.close()
