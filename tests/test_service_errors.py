"""Service errors: no internals in error bodies (tracebacks, paths, addresses stay in the server log with the
request id), docs behind the keys, deploy-time checks, and a failing log flush that is logged and retried."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from llmfti.errors import ConfigError
from llmfti.testing.scripted_generator import ScriptedGenerator
from service_fixtures import RaisingGenerator, read_log, server_log  # noqa: F401 (fixture)


# --- 14: no internals in error bodies; docs behind the keys --------------------------------------------


def test_backend_failures_keep_their_details_in_the_server_log(agent_home, tmp_path, server_log):
    from llmfti.agents.app import create_app
    from llmfti.models.generation import BackendUnavailable, GenerationTimeout

    deploy(agent_home, tmp_path, name="upstream")
    secret = "OpenAI-compatible server http://10.9.8.7:8001/v1 failed: Error code: 500 - {'detail': 'CUDA OOM at /srv/vllm/worker.py'}"
    for exc, status in ((BackendUnavailable(secret), 502), (GenerationTimeout("http://10.9.8.7:8001/v1 did not answer within 5s"), 504)):
        with TestClient(create_app(agent_home, api_keys=set(), generator_override=RaisingGenerator(exc))) as c:
            r = c.post("/v1/deployments/upstream/invoke", json={"question": "q"})
            streamed = c.post("/v1/deployments/upstream/invoke?stream=true", json={"question": "q"})
            chat = c.post("/v1/chat/completions", json={"model": "upstream", "stream": True, "messages": [{"role": "user", "content": "q"}]})
        assert r.status_code == status and r.json()["type"] == type(exc).__name__
        for text in (r.text, streamed.text, chat.text):
            assert "10.9.8.7" not in text and "/srv/" not in text
        request_id = r.json()["request_id"]
        assert request_id in r.json()["error"] and "server log" in r.json()["error"]
        assert "event: error" in streamed.text and '"request_id"' in streamed.text
        logged = [line for line in server_log.getvalue().splitlines() if f"[req={request_id}]" in line]
        assert any("10.9.8.7" in line for line in logged), server_log.getvalue()


def test_unexpected_errors_are_a_json_500_and_a_logged_traceback(agent_home, tmp_path, server_log):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path, name="buggy")
    gen = RaisingGenerator(RuntimeError("index out of range in /srv/llmfti/secret_module.py"))
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=gen)) as c:
        r = c.post("/v1/deployments/buggy/invoke", json={"question": "q"})
    assert r.status_code == 500
    body = r.json()
    assert body["type"] == "InternalError" and "secret_module" not in r.text and "Traceback" not in r.text
    request_id = body["request_id"]
    text = server_log.getvalue()
    assert f"[req={request_id}]" in text and "Traceback (most recent call last)" in text and "secret_module.py" in text
    assert read_log(agent_home, "buggy")[request_id]["status"] == "RuntimeError"


def test_bad_filter_values_get_a_clean_422(agent_home, tmp_path):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path, name="filtered", retrieval={"filters": ["doc_id", "chunk_index"]})
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["fine"]))) as c:
        bad = c.post("/v1/deployments/filtered/invoke", json={"question": "loops", "filters": {"chunk_index": "0 OR 1=1"}})
        good = c.post("/v1/deployments/filtered/invoke", json={"question": "loops", "filters": {"chunk_index": "0", "doc_id": "gen.md"}})
        quote = c.post("/v1/deployments/filtered/invoke", json={"question": "loops", "filters": {"doc_id": "it's\\"}})
    assert bad.status_code == 422 and "filters.chunk_index must be an integer" in bad.json()["error"]
    assert ".rs" not in bad.text and "Valid fields" not in bad.text and "Int32" not in bad.text
    assert good.status_code == 200 and [c["source"].split("/")[-1] for c in good.json()["citations"]] == ["gen.md"]
    assert quote.status_code == 200 and quote.json()["citations"] == []


def test_search_engine_errors_stay_in_the_server_log(agent_home, server_log):
    from llmfti.pipelines.inference.retrieval import retrieve
    from llmfti.store import FeatureStore

    fg = FeatureStore(agent_home).feature_group("docs:1")
    embedder = fg.embedder()
    with pytest.raises(ConfigError) as info:
        retrieve(fg.table(), embedder.embed_query("loops"), "loops", 2, where="no_such_column = 'x'")
    assert "could not be applied" in str(info.value) and "Valid fields" not in str(info.value) and "chunk_id" not in str(info.value)
    assert "no_such_column" in server_log.getvalue()


def test_readyz_and_503_do_not_show_build_errors(agent_home, tmp_path, monkeypatch, server_log):
    from llmfti.agents import manager as manager_module
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path, name="broken")
    real = manager_module.build_runtime

    def build(home, record, *args, **kwargs):
        if record["name"] == "broken":
            raise OSError("cannot open /srv/models/secret-weights/model.safetensors")
        return real(home, record, *args, **kwargs)

    monkeypatch.setattr(manager_module, "build_runtime", build)
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["ok"]))) as c:
        ready = c.get("/readyz")
        missing = c.post("/v1/deployments/broken/invoke", json={"question": "q"})
    assert ready.status_code == 200 and "broken" in ready.json()["errors"] and "failed to load" in ready.json()["errors"]["broken"]
    assert missing.status_code == 503 and "failed to load" in missing.json()["error"]
    for text in (ready.text, missing.text):
        assert "/srv/models" not in text and "safetensors" not in text
    assert "/srv/models/secret-weights" in server_log.getvalue()


def test_docs_openapi_and_metrics_can_be_put_behind_the_keys(agent_home, monkeypatch):
    from llmfti.agents.app import create_app

    key = {"Authorization": "Bearer docs-key"}
    with TestClient(create_app(agent_home, api_keys={"docs-key"}, protect_docs=True, generator_override=ScriptedGenerator(["ok"]))) as c:
        for path in ("/docs", "/openapi.json", "/metrics", "/redoc"):
            denied = c.get(path)
            assert denied.status_code == 401 and denied.json()["request_id"], path
            assert c.get(path, headers=key).status_code == 200, path
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200  # probes stay open
    with TestClient(create_app(agent_home, api_keys={"docs-key"}, generator_override=ScriptedGenerator(["ok"]))) as c:
        assert c.get("/metrics").status_code == 200  # off by default
    monkeypatch.setenv("LLMFTI_PROTECT_DOCS", "1")
    with pytest.raises(ConfigError, match="needs API keys"):
        create_app(agent_home, api_keys=set())  # protecting docs with no keys would protect nothing
    monkeypatch.setenv("LLMFTI_API_KEYS", "env-key")
    app = create_app(agent_home)
    guard = [m for m in app.user_middleware if m.cls.__name__ == "AuthGuard"][0]
    assert guard.kwargs["protect_docs"] is True


# --- 15, 16: deploy-time checks ----------------------------------------------------------------------


def test_deploy_refuses_filters_on_columns_the_feature_group_lacks(agent_home, tmp_path):
    with pytest.raises(ConfigError) as info:
        deploy(agent_home, tmp_path, name="nofilter", retrieval={"filters": ["doc_id", "author", "vector"]})
    message = str(info.value)
    assert "['author', 'vector']" in message and "available:" in message and "doc_id" in message and "chunk_index" in message


def test_backend_api_key_env_cannot_name_the_services_own_secrets():
    from pydantic import ValidationError

    from llmfti.config.deployments import BackendSettings

    base = {"kind": "openai", "base_url": "http://127.0.0.1:8001/v1", "model": "m"}
    for name in ("LLMFTI_API_KEYS", "LLMFTI_API_KEYS_FILE", "AWS_SECRET_ACCESS_KEY", "LLMFTI_BACKEND_", "llmfti_backend_key"):
        with pytest.raises(ValidationError, match="must start with|LLMFTI_BACKEND_"):
            BackendSettings(**base, api_key_env=name)
    assert BackendSettings(**base, api_key_env="LLMFTI_BACKEND_VLLM_KEY").api_key_env == "LLMFTI_BACKEND_VLLM_KEY"


# --- 24: the server log -------------------------------------------------------------------------------


def test_a_failing_log_flush_logs_a_warning_and_retries(agent_home, server_log):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(agent_home), flush_interval_s=0.05)
    real_insert = log.table.insert_new

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    log.table.insert_new = full_disk
    log.append({"request_id": "flush-retry-1", "deployment": "flushy", "status": "ok"})
    log.start()
    deadline = time.time() + 20
    while "inference log flush failed" not in server_log.getvalue() and time.time() < deadline:
        time.sleep(0.05)
    log.table.insert_new = real_insert
    log.close()  # its final flush retries the buffered row
    line = next(line for line in server_log.getvalue().splitlines() if "inference log flush failed" in line)
    assert "WARNING" in line and "No space left on device" in line and "retrying" in line
    assert "flush-retry-1" in read_log(agent_home, "flushy")
