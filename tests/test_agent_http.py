"""The HTTP service: typed invoke, validation and limits, auth, streaming, OpenAI-compatible API."""

import json

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from llmfti.testing.scripted_generator import ScriptedGenerator


@pytest.fixture(scope="module")
def client(agent_home, tmp_path_factory):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path_factory.mktemp("cfg"), name="docs-qa")
    gen = ScriptedGenerator(lambda req: "The __exit__ method always runs [1].")
    app = create_app(agent_home, api_keys=set(), max_body_bytes=4096, generator_override=gen)
    with TestClient(app) as c:
        yield c


def test_invoke_returns_answer_citations_versions_and_timings(client):
    r = client.post("/v1/deployments/docs-qa/invoke", json={"question": "What does __exit__ do?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"].startswith("The __exit__")
    assert body["citations"] and set(body["citations"][0]) == {"chunk_id", "doc_id", "source", "score", "text"}
    assert body["citations"][0]["source"].endswith("with.md")
    v = body["versions"]
    assert v["model"] == "tiny:1" and v["feature_group"] == "docs:1" and isinstance(v["commit"], int) and len(v["prompt_fingerprint"]) == 64
    stages = set(body["timings_ms"])
    assert {"on_demand", "embed_query", "retrieve", "build_prompt", "generate", "log", "total"} <= stages
    header = r.headers["server-timing"]
    assert all(f"{s};dur=" in header for s in stages)
    assert "prompt_text" not in body and "Contexts:" not in r.text  # the prompt never leaves the server


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({}, 422, "question"),
        ({"question": ""}, 422, "question"),
        ({"question": "x" * 2001}, 422, "question"),
        ({"question": "q", "k": 6}, 422, "k"),
        ({"question": "q", "unknown": 1}, 422, "unknown"),
        ({"question": "q", "filters": {"source": "x"}}, 422, "not allowed"),
    ],
)
def test_request_validation(client, payload, status, fragment):
    r = client.post("/v1/deployments/docs-qa/invoke", json=payload)
    assert r.status_code == status and fragment in r.text


def test_filters_k_and_limits(client):
    r = client.post("/v1/deployments/docs-qa/invoke", json={"question": "loop", "k": 1, "filters": {"doc_id": "gen.md"}})
    assert r.status_code == 200 and [c["source"].split("/")[-1] for c in r.json()["citations"]] == ["gen.md"]
    big = client.post("/v1/deployments/docs-qa/invoke", content=json.dumps({"question": "q" * 5000}), headers={"content-type": "application/json"})
    assert big.status_code == 413 and "exceeds" in big.json()["error"]
    chunked = client.post("/v1/deployments/docs-qa/invoke", content=(b'{"question": "' + b"q" * 1000 + b'"}' for _ in range(5)),
                          headers={"content-type": "application/json"})  # a generator body is sent chunked: no Content-Length
    assert chunked.status_code == 413
    assert client.post("/v1/deployments/nope/invoke", json={"question": "q"}).status_code == 404
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").json()["ready"]


def test_streaming_sse(client):
    with client.stream("POST", "/v1/deployments/docs-qa/invoke?stream=true", json={"question": "What does __exit__ do?"}) as r:
        events = [line for line in r.iter_lines() if line.startswith("event:")]
        assert r.status_code == 200
    assert events.count("event: token") >= 3 and events[-1] == "event: done"
    # A bad request is refused with its status before the stream starts, on both streaming routes.
    bad = client.post("/v1/deployments/docs-qa/invoke?stream=true", json={"question": "q", "k": 99})
    assert bad.status_code == 422 and bad.json()["type"] == "RequestInvalid"
    bad = client.post("/v1/chat/completions", json={"model": "docs-qa", "stream": True, "messages": [{"role": "user", "content": "x" * 3000}]})
    assert bad.status_code == 422


def test_metrics_and_openapi(client):
    client.post("/v1/deployments/docs-qa/invoke", json={"question": "loops"})
    text = client.get("/metrics").text
    assert 'llmfti_stage_seconds_bucket{deployment="docs-qa"' in text and 'stage="retrieve"' in text
    assert 'llmfti_requests_total{deployment="docs-qa",status="ok"}' in text
    spec = client.get("/openapi.json").json()
    ref = spec["paths"]["/v1/deployments/docs-qa/invoke"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.split("/")[-1]]
    assert schema["properties"]["question"]["maxLength"] == 2000 and "k" in schema["properties"]


@pytest.mark.integration
def test_official_openai_client(client):
    """The unmodified `openai` client over real HTTP (uvicorn on loopback, in a thread)."""
    import threading
    import time

    import uvicorn
    from openai import OpenAI

    from server_process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        _check_openai_client(OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused"))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _check_openai_client(oai):
    resp = oai.chat.completions.create(model="docs-qa", messages=[{"role": "user", "content": "What does __exit__ do?"}])
    assert resp.choices[0].message.content.startswith("The __exit__") and resp.usage.total_tokens > 0
    chunks = list(oai.chat.completions.create(model="docs-qa", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("The __exit__")


def test_api_keys_and_timeout(agent_home, tmp_path):
    from llmfti.agents.app import create_app
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    deploy(agent_home, tmp_path, name="slow", generation={"timeout_s": 0.2, "max_new_tokens": 8})
    app = create_app(agent_home, api_keys={"s3cret-key"}, generator_override=ScriptedGenerator(["late"], delay_s=1.0))
    with TestClient(app) as c:
        assert c.post("/v1/deployments/slow/invoke", json={"question": "q"}).status_code == 401
        bad = c.post("/v1/deployments/slow/invoke", json={"question": "q"}, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        r = c.post("/v1/deployments/slow/invoke", json={"question": "q"}, headers={"Authorization": "Bearer s3cret-key"})
        assert r.status_code == 504 and r.json()["type"] == "GenerationTimeout"
        assert c.get("/healthz").status_code == 200  # still serving
    log = InferenceLog(FeatureStore(agent_home))
    log.flush()
    rows = log.query("slow", limit=None)
    assert rows and rows[0]["status"] == "GenerationTimeout"
    assert "s3cret-key" not in json.dumps(rows, default=str)
    log.close()
