"""The OpenAPI document says what the service does (issue 27, finding 12): the chat route requires
`model`, filter keys are the deployment's filterable columns, `k` is an integer (not a boolean), every
422 detail item has its documented `type`, an unknown deployment's 404 and `/metrics`' text/plain are
documented."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from llmfti.testing.scripted_generator import ScriptedGenerator


@pytest.fixture(scope="module")
def client(agent_home, tmp_path_factory):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path_factory.mktemp("contract"), name="contract")
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["fine"]))) as c:
        yield c


def test_the_schema_documents_required_fields_filter_keys_errors_and_metrics(client):
    doc = client.get("/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["required"] is True
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    body = doc["components"]["schemas"][ref]
    assert {"model", "messages"} <= set(body["required"])
    assert {"404", "422"} <= set(chat["responses"])
    assert "404" in doc["paths"]["/v1/deployments/contract/invoke"]["post"]["responses"]
    assert "/v1/deployments/{name}/invoke" not in doc["paths"]  # each deployment's own path documents its request
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    request = doc["components"]["schemas"]["ContractRequest"]["properties"]
    assert request["filters"]["propertyNames"] == {"enum": ["doc_id"]}
    k = next(s for s in request["k"]["anyOf"] if s.get("type") == "integer")
    assert k["maximum"] == 5
    detail = doc["paths"]["/v1/deployments/contract/invoke"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert detail["properties"]["detail"]["items"]["required"] == ["loc", "msg", "type"]


def test_the_service_does_what_the_schema_says(client):
    r = client.post("/v1/deployments/contract/invoke", json={"question": "loops?", "k": False})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "k"  # was accepted as k=0
    r = client.post("/v1/deployments/contract/invoke", json={"question": "loops?", "filters": {"": "x"}})
    assert r.status_code == 422 and "not allowed" in r.json()["error"]
    r = client.post("/v1/deployments/contract/invoke", json={"question": ""})
    assert r.status_code == 422 and all({"loc", "msg", "type"} <= set(d) for d in r.json()["detail"])
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 422 and r.json()["detail"] == [{"loc": ["model"], "msg": "Field required", "type": "missing"}]
    assert client.post("/v1/deployments/nope/invoke", json={"question": "x"}).status_code == 404
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert client.post("/v1/deployments/contract/invoke", json={"question": "loops?", "k": 1, "filters": {"doc_id": "a"}}).status_code == 200
