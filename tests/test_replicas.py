"""Many agent replicas on one home: inference-log segments carry a host id, so a segment of another
host is never taken for a dead process's because of a local pid check (only after its writer's
heartbeat is older than the takeover window), and deployment activation follows a sequence claimed
atomically, not the clocks of the hosts that deployed. Simulated hosts: LLMFTI_HOST_ID per process,
skewed clocks per DeploymentStore."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def run_py(code: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, cwd=str(TESTS))
    return proc


def row(i: int, prefix: str) -> dict:
    return {"request_id": f"{prefix}-{i}", "deployment": "d", "deployment_version": 1, "model": "m:1", "request": {"question": f"q{i}"},
            "output": "a", "status": "ok", "timings_ms": {"total": 1.0}}


def flushed_ids(home) -> set[str]:
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home), maintenance=False, host="reader")
    try:
        return {r["request_id"] for r in log.query(limit=None, columns=["request_id"])}
    finally:
        log.close()


WRITE_AND_DIE = """
import os, signal
from llmfti.store import FeatureStore
from llmfti.store.inference_log import InferenceLog
log = InferenceLog(FeatureStore({home!r}), maintenance=False)
for i in range(3):
    log.append({{"request_id": "a-%d" % i, "deployment": "d", "status": "ok", "request": {{"q": i}}}})
print(log.host, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a crash: segments stay behind, the pid is dead on this machine
"""


def test_another_hosts_segments_are_not_flushed_by_a_pid_check(tmp_path):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = tmp_path / "home"
    proc = run_py(WRITE_AND_DIE.format(home=str(home)), {"LLMFTI_HOST_ID": "host-a"})
    assert proc.returncode == -9 and proc.stdout.strip() == "host-a", proc.stderr
    buffers = home / "buffers" / "inference_log"
    segments = sorted(p.name for p in buffers.iterdir() if ".jsonl" in p.name)
    assert segments and all(name.startswith("host-a~") for name in segments)

    # Host B shares the buffer folder (NFS). host-a's pid means nothing here: B must leave its rows alone.
    other = InferenceLog(FeatureStore(home), maintenance=False, host="host-b", takeover_after_s=60)
    assert other.flush() == 0
    assert sorted(p.name for p in buffers.iterdir() if ".jsonl" in p.name and p.name.startswith("host-a")) == segments
    other.close()
    assert flushed_ids(home) == set()

    # On host-a itself the pid check applies: the dead writer's rows are flushed there.
    same = InferenceLog(FeatureStore(home), maintenance=False, host="host-a")
    assert same.flush() == 3
    same.close()
    assert flushed_ids(home) == {"a-0", "a-1", "a-2"}
    assert not [p for p in buffers.iterdir() if p.name.startswith("host-a~") and ".jsonl" in p.name]


def test_another_host_takes_over_after_the_window_without_heartbeat(tmp_path):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = tmp_path / "home"
    proc = run_py(WRITE_AND_DIE.format(home=str(home)), {"LLMFTI_HOST_ID": "host-a"})
    assert proc.returncode == -9, proc.stderr
    taker = InferenceLog(FeatureStore(home), maintenance=False, host="host-b", takeover_after_s=1.0)
    assert taker.flush() == 0  # host-a's heartbeat is fresh
    time.sleep(1.3)  # ... and stops: host-a is gone for longer than the window
    assert taker.flush() == 3
    taker.close()
    assert flushed_ids(home) == {"a-0", "a-1", "a-2"}
    left = [p.name for p in (home / "buffers" / "inference_log").iterdir()]
    assert not [n for n in left if n.startswith("host-a")], left  # its heartbeat file is reaped too


REPLICA = """
import sys, time
from llmfti.store import FeatureStore
from llmfti.store.inference_log import InferenceLog
log = InferenceLog(FeatureStore({home!r}), flush_interval_s=0.1, maintenance=False, takeover_after_s=2.0).start()
for i in range({n}):
    log.append({{"request_id": "%s-%d" % (log.host, i), "deployment": "d", "status": "ok", "request": {{"q": i}}}})
    time.sleep(0.02)
log.close()
print(log.host)
"""


def test_replicas_on_several_hosts_share_one_home_and_lose_no_row(tmp_path):
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(REPLICA.format(home=str(home), n=25))], cwd=str(TESTS),
                              env={**os.environ, "LLMFTI_HOST_ID": f"replica-{i}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    ids = flushed_ids(home)
    assert ids == {f"replica-{i}-{j}" for i in range(3) for j in range(25)}
    # Every row exactly once: the idempotent merge never duplicated a row two flushers both saw.
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import LOG_TABLE

    assert FeatureStore(home).db.open_table(LOG_TABLE).count_rows() == 75
    assert not [p for p in (home / "buffers" / "inference_log").iterdir() if ".jsonl" in p.name]


def test_host_id_comes_from_the_environment_and_is_file_name_safe(monkeypatch):
    from llmfti.store.inference_log import _owner, host_id

    monkeypatch.setenv("LLMFTI_HOST_ID", "rack 7/node~3.jsonl")
    assert host_id() == "rack_7_node_3_jsonl"
    monkeypatch.delenv("LLMFTI_HOST_ID")
    import socket

    assert host_id().startswith(socket.gethostname()[:20].replace("~", "_")[:5])
    assert _owner("web-1.example~123-abcd1234-000002.jsonl.open") == ("web-1.example", 123, "abcd1234")
    assert _owner("web-1~123-abcd1234-000002.jsonl.flushing-web-2~77-ffff0000") == ("web-2", 77, "ffff0000")
    assert _owner("123-deadbeef-000001.jsonl") == (None, 123, "deadbeef")  # written before host ids: this host's


# -- deployment activation ------------------------------------------------------------------------


def _config(name: str = "svc"):
    from llmfti.config.deployments import DeploymentConfig

    return DeploymentConfig(name=name, model="tiny:1", retrieval={"k": 0})


CHECKS = {"commit": "latest", "checks": {}}


def test_activation_follows_the_sequence_not_the_clocks_of_the_hosts(tmp_path):
    from llmfti.registry.deployments import DeploymentStore

    home = tmp_path / "home"
    now = datetime.now(timezone.utc)
    host_a = DeploymentStore(home, clock=lambda: now)
    host_b = DeploymentStore(home, clock=lambda: now - timedelta(hours=1))  # its clock runs an hour behind
    assert host_a.deploy(_config(), checks=CHECKS)["version"] == 1
    assert host_b.deploy(_config(), checks=CHECKS)["version"] == 2  # later, though stamped an hour earlier
    assert host_a.active("svc")["version"] == 2 and host_b.active("svc")["version"] == 2
    assert [a["version"] for a in host_a.list_active()] == [2]
    host_b.rollback("svc", reason="bad answers")
    assert host_a.active("svc")["version"] == 1
    history = host_a.history("svc")
    assert [(h["seq"], h["action"], h["version"]) for h in history] == [(1, "deploy", 1), (2, "deploy", 2), (3, "rollback", 1)]
    assert history[1]["at"] < history[0]["at"]  # the clocks disagree; the order does not
    marker = host_a.events_marker()
    host_a.deploy(_config(), checks=CHECKS, stage=True)
    assert host_a.active("svc")["version"] == 1 and host_a.staged("svc")["version"] == 3 and host_a.events_marker() != marker


def test_events_written_before_sequences_come_first(tmp_path):
    import pyarrow as pa

    from llmfti.registry.deployments import DeploymentStore
    from llmfti.tables import TS

    home = tmp_path / "home"
    store = DeploymentStore(home, clock=lambda: datetime(2030, 1, 1, tzinfo=timezone.utc))
    store.deploy(_config(), checks=CHECKS)
    store.deploy(_config(), checks=CHECKS)
    # Rewrite the events table as an older llmfti left it: no seq column, v2 deployed "in 2030".
    db = store.home.connect()
    old = pa.schema([pa.field("name", pa.string()), pa.field("action", pa.string()), pa.field("version", pa.int32()),
                     pa.field("reason", pa.string()), pa.field("at", TS)])
    db.drop_table("_deployment_events")
    db.create_table("_deployment_events", data=pa.Table.from_pylist(
        [{"name": "svc", "action": "deploy", "version": v, "reason": "", "at": datetime(2030, 1, v, tzinfo=timezone.utc)} for v in (1, 2)], schema=old))
    fresh = DeploymentStore(home, clock=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc))  # a host whose clock is years behind
    assert fresh.active("svc")["version"] == 2
    fresh.rollback("svc", to=1)
    assert fresh.active("svc")["version"] == 1  # the sequenced event is newer than every legacy one
    seqs = [h["seq"] for h in fresh.history("svc")]
    assert seqs[:2] == [None, None] and seqs[2] is not None


DEPLOYER = """
from datetime import datetime, timedelta, timezone
from llmfti.config.deployments import DeploymentConfig
from llmfti.registry.deployments import DeploymentStore
skew = timedelta(minutes={skew})
store = DeploymentStore({home!r}, clock=lambda: datetime.now(timezone.utc) + skew)
cfg = DeploymentConfig(name="svc", model="tiny:1", retrieval={{"k": 0}})
for _ in range(4):
    store.deploy(cfg, checks={{"commit": "latest", "checks": {{}}}})
"""


def test_concurrent_deploys_from_several_hosts_get_distinct_sequence_numbers(tmp_path):
    from llmfti.registry.deployments import DeploymentStore

    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(DEPLOYER.format(home=str(home), skew=skew))], cwd=str(TESTS),
                              env={**os.environ, "LLMFTI_HOST_ID": f"h{i}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, skew in enumerate((-30, 0, 45))]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    store = DeploymentStore(home)
    events = store._events("svc")
    seqs = [e.seq for e in events]
    assert sorted(seqs) == list(range(1, 13))  # twelve events, twelve distinct numbers, no gap
    assert sorted(e.version for e in events) == list(range(1, 13))
    assert store.active("svc")["version"] == max(events, key=lambda e: e.seq).version
    assert [h["seq"] for h in store.history("svc")] == sorted(seqs)
