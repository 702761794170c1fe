"""Inference log: a row per request (failed ones too), durable across SIGKILL; replay identity."""

import os
import signal

import httpx
import pytest

from agent_fixtures import deploy, make_home
from server_process import start_server
from llmfti.pipelines.feature import ingest as run_ingest


def read_log(home, deployment):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home))
    log.flush()
    rows = log.query(deployment, limit=None)
    log.close()
    return rows


def test_every_request_has_a_row_including_failures(tmp_path):
    from fastapi.testclient import TestClient

    from llmfti.agents.app import create_app
    from llmfti.testing.scripted_generator import ScriptedGenerator

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="logged", on_demand=["current_date", "normalized_question"])
    with TestClient(create_app(home, api_keys=set(), generator_override=ScriptedGenerator(["fine"]))) as c:
        ok = [c.post("/v1/deployments/logged/invoke", json={"question": f"  what   is {i}?"}).json()["request_id"] for i in range(5)]
        bad = c.post("/v1/deployments/logged/invoke", json={"question": "q", "k": 50}).json()["request_id"]
    rows = {r["request_id"]: r for r in read_log(home, "logged")}
    assert set(rows) == set(ok) | {bad}
    row = rows[ok[0]]
    assert row["request"] == {"question": "  what   is 0?"}  # untransformed input
    assert row["features"]["normalized_question"] == "what is 0?" and "current_date" in row["features"]
    assert row["retrieved"] and {"chunk_id", "score"} <= set(row["retrieved"][0])
    assert row["commit"] >= 1 and row["prompt_fingerprint"] and "Contexts:" in row["prompt_text"]
    assert row["output"] == "fine" and row["status"] == "ok" and row["timings_ms"]["total"] > 0
    assert rows[bad]["status"] == "RequestInvalid" and "k" in rows[bad]["error"]


@pytest.mark.integration
def test_log_survives_sigkill_of_the_server(tmp_path):
    home = make_home(tmp_path)
    deploy(home, tmp_path, name="durable")
    proc, url = start_server(home)
    try:
        ids = [httpx.post(f"{url}/v1/deployments/durable/invoke", json={"question": f"q{i}"}, timeout=60).json()["request_id"] for i in range(4)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown hook runs: rows must already be durable
        proc.wait()
    assert {r["request_id"] for r in read_log(home, "durable")} == set(ids)


def test_replay_reproduces_prompt_and_greedy_output(tmp_path):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.replay import replay
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="rp", on_demand=["current_date"])
    runtime = build_runtime(home, DeploymentStore(home).active("rp"), RuntimeCache())  # real tiny transformers model
    log = InferenceLog(FeatureStore(home))
    result = invoke(runtime, {"question": "What does a generator do?"}, log=log)
    log.close()
    # New data arrives after the request: replay must still read the commit the request used.
    (tmp_path / "corpus" / "late.md").write_text("# Generators again\n\nA generator function returns a generator iterator.\n")
    assert run_ingest(FeatureStore(home).feature_group("docs"), [str(tmp_path / "corpus")]).committed
    report = replay(home, result["request_id"])
    assert report["prompt_fingerprint_identical"] and report["prompt_identical"] and report["output_identical"], report
    assert report["replayed_output"] == result["answer"] and report["commit"] == result["versions"]["commit"]
