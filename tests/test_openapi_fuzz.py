"""schemathesis against the service's own OpenAPI document (issue 27, finding 12): every documented
operation, bounded examples, in-process (ASGI, no network), without and with auth. Any 5xx, or a
response that the document does not describe (status, content type, body schema), fails."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from agent_fixtures import agent_home, deploy  # noqa: E402,F401 (fixture)
from llmfti.testing.scripted_generator import ScriptedGenerator  # noqa: E402

KEY = "fuzz-key"


def _app(agent_home, tmp_path_factory, keys):
    from llmfti.agents.app import create_app

    if not hasattr(_app, "deployed"):
        deploy(agent_home, tmp_path_factory.mktemp("fuzz"), name="fuzz")
        _app.deployed = True
    return create_app(agent_home, api_keys=keys, generator_override=ScriptedGenerator(["fine"]))


def _fuzz(schema, max_examples: int = 15, headers: dict | None = None) -> list[str]:
    """Run every operation's strategy through call_and_validate; the operations it ran."""
    from hypothesis import given

    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(headers=headers)

        check()
        ran.append(f"{operation.method.upper()} {operation.path}")
    return ran


def test_no_server_error_and_responses_match_the_document(agent_home, tmp_path_factory):
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app(agent_home, tmp_path_factory, set()))
    ran = _fuzz(schema)
    assert {"POST /v1/deployments/fuzz/invoke", "POST /v1/chat/completions", "GET /metrics"} <= set(ran)


def test_with_auth_every_operation_behaves_as_documented(agent_home, tmp_path_factory):
    app = _app(agent_home, tmp_path_factory, {KEY})
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # started: its deployments are loaded, so their paths are documented
        assert client.get("/v1/deployments").status_code == 401  # the keys are on
        spec = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
        schema = schemathesis.openapi.from_dict(spec)
        schema.app = app  # calls go to the app in-process (ASGI), as from_asgi's do
        ran = _fuzz(schema, max_examples=10, headers={"Authorization": f"Bearer {KEY}"})
    assert "POST /v1/deployments/fuzz/invoke" in ran
