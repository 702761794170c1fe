"""Service hardening: hostile or unlucky clients get clear JSON errors with the request id (never a
traceback or the server's internals), the service fails closed on auth, liveness answers under any
load, OpenAI-shaped requests are validated, and tool loops end in an answer or a clear error. Error bodies,
deploy-time checks and the server log: tests/test_service_errors.py."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from service_fixtures import read_log
from llmfti.errors import ConfigError
from llmfti.testing.scripted_generator import ScriptedGenerator

TOOL_CALL = '<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def tool_call(name: str, **args) -> str:
    return TOOL_CALL.format(name=name, args=json.dumps(args))


def app_log(client, deployment: str) -> dict[str, dict]:
    """Rows of a running app's inference log (flushed first: rows wait in its open segment)."""
    client.app.state.log.flush()
    return {r["request_id"]: r for r in client.app.state.log.query(deployment, limit=None)}


# --- 8: auth fails closed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"LLMFTI_API_KEYS": " , "}, "LLMFTI_API_KEYS is set but holds no API key"),
        ({"LLMFTI_API_KEYS": ""}, "LLMFTI_API_KEYS is set but holds no API key"),
        ({"LLMFTI_API_KEYS_FILE": "{empty}"}, "holds no API key"),
        ({"LLMFTI_API_KEYS_FILE": "{comments}"}, "holds no API key"),
        ({"LLMFTI_API_KEYS_FILE": "{missing}"}, "cannot read LLMFTI_API_KEYS_FILE"),
    ],
)
def test_configured_but_empty_key_source_refuses_to_start(agent_home, tmp_path, monkeypatch, env, fragment):
    from llmfti.agents.app import create_app

    files = {"empty": tmp_path / "empty.keys", "comments": tmp_path / "comments.keys", "missing": tmp_path / "missing.keys"}
    files["empty"].write_text("\n\n")
    files["comments"].write_text("# production keys\n   # indented comment\n\t#another\n")
    monkeypatch.delenv("LLMFTI_API_KEYS", raising=False)
    monkeypatch.delenv("LLMFTI_API_KEYS_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(**{k: str(v) for k, v in files.items()}))
    with pytest.raises(ConfigError, match=fragment):
        create_app(agent_home)
    with pytest.raises(ConfigError):
        create_app(agent_home, api_keys={" ", ""})  # keys given in code: only empty ones is no auth by mistake


def test_keys_file_comments_are_stripped_and_keys_compared_in_constant_time(agent_home, tmp_path, monkeypatch):
    import hmac

    from llmfti.agents import auth
    from llmfti.agents.app import create_app

    keys_file = tmp_path / "api.keys"
    keys_file.write_text("  # old-key\n  first-key  \n\nsecond-key\n")
    monkeypatch.delenv("LLMFTI_API_KEYS", raising=False)
    monkeypatch.setenv("LLMFTI_API_KEYS_FILE", str(keys_file))
    assert auth.load_api_keys() == {"first-key", "second-key"}

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    with TestClient(create_app(agent_home, generator_override=ScriptedGenerator(["ok"]))) as c:
        for token in ("# old-key", "old-key", "first-key-but-longer", ""):
            r = c.get("/v1/deployments", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401 and r.json()["request_id"] == r.headers["x-request-id"]
        calls.clear()
        assert c.get("/v1/deployments", headers={"Authorization": "Bearer first-key"}).status_code == 200
        assert len(calls) == 2  # every key compared, none skipped once one matched
        assert c.get("/v1/deployments", headers={"Authorization": "bearer second-key"}).status_code == 200


# --- 9: liveness under load, bounded concurrency ----------------------------------------------------


def test_healthz_answers_while_invokes_block_and_overload_is_a_503(agent_home, tmp_path):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path, name="gated", generation={"timeout_s": 120, "max_new_tokens": 8})
    gate = threading.Event()
    safety = threading.Timer(90, gate.set)  # never hang the suite, whatever happens
    safety.start()

    def blocked(request):
        gate.wait(90)
        return "released"

    gen = ScriptedGenerator(blocked)
    app = create_app(agent_home, api_keys=set(), generator_override=gen, max_in_flight=50)
    statuses: list[int] = []
    with TestClient(app) as c:
        def call():
            statuses.append(c.post("/v1/deployments/gated/invoke", json={"question": "loops?"}).status_code)

        threads = [threading.Thread(target=call) for _ in range(50)]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while len(gen.requests) < 50 and time.time() < deadline:
            time.sleep(0.05)
        assert len(gen.requests) == 50, "all 50 requests should be generating at once"
        t0 = time.perf_counter()
        health, ready = c.get("/healthz"), c.get("/readyz")
        elapsed = time.perf_counter() - t0
        over = c.post("/v1/deployments/gated/invoke", json={"question": "one too many"})
        still_blocked = not gate.is_set()
        gate.set()
        for t in threads:
            t.join(60)
    safety.cancel()
    assert still_blocked  # both answers came while all 50 were blocked
    assert health.status_code == 200 and ready.status_code == 200 and elapsed < 2.0, elapsed
    assert over.status_code == 503 and over.headers["retry-after"] == "1"
    body = over.json()
    assert body["type"] == "Overloaded" and "50 requests in flight" in body["error"] and body["request_id"] == over.headers["x-request-id"]
    assert statuses == [200] * 50  # the admitted ones all finished


def test_max_in_flight_from_the_environment(agent_home, monkeypatch):
    from llmfti.agents.app import create_app

    monkeypatch.setenv("LLMFTI_MAX_IN_FLIGHT", "lots")
    with pytest.raises(ConfigError, match="LLMFTI_MAX_IN_FLIGHT"):
        create_app(agent_home, api_keys=set())
    monkeypatch.setenv("LLMFTI_MAX_IN_FLIGHT", "3")
    app = create_app(agent_home, api_keys=set())
    limits = [m for m in app.user_middleware if m.cls.__name__ == "ConcurrencyLimit"]
    assert limits and limits[0].kwargs["max_in_flight"] == 3


# --- 11: OpenAI request validation --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_client(agent_home, tmp_path_factory):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path_factory.mktemp("chat"), name="chat")
    app = create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["fine"]))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ("What is a loop?", "messages"),
        ([1], "messages.0"),
        ({"role": "user", "content": "hi"}, "messages"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/cat.png"}}]}], "messages.0.content"),
        ([{"role": "wizard", "content": "hi"}], "messages.0.role"),
        ([], "messages"),
    ],
)
def test_malformed_openai_messages_are_a_422_with_a_log_row(chat_client, agent_home, messages, fragment):
    r = chat_client.post("/v1/chat/completions", json={"model": "chat", "messages": messages})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"] == "RequestInvalid" and fragment in body["error"] and body["request_id"] == r.headers["x-request-id"]
    row = app_log(chat_client, "chat")[body["request_id"]]
    assert row["status"] == "RequestInvalid" and row["request"]["messages"] == messages


def test_bodies_that_are_not_json_objects_get_our_error_shape(chat_client, agent_home):
    r = chat_client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["type"] == "RequestInvalid" and r.json()["request_id"]
    r = chat_client.post("/v1/deployments/chat/invoke", json=["question"])
    assert r.status_code == 422 and r.json()["request_id"] in app_log(chat_client, "chat")
    r = chat_client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["request_id"] == r.headers["x-request-id"]
    ok = chat_client.post("/v1/chat/completions", json={"model": "chat", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "loops?"}]}], "temperature": 0.2})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "fine"


# --- 13: tools: non-finite results, non-JSON results, exhausted budget ---------------------------------


def test_calculator_refuses_non_finite_results():
    from llmfti.tools import calculator

    with pytest.raises(ValueError, match="finite"):
        calculator("*".join(["1e14"] * 30))  # 1e420: inf in floats
    assert calculator("*".join(["1e14"] * 20)) == pytest.approx(1e280)


def _register_odd_tools():
    from llmfti.tools import register_tool

    register_tool("test_nan", "Returns NaN (a broken extension tool).", {})(lambda: float("nan"))
    register_tool("test_object", "Returns an object JSON cannot carry.", {})(lambda: {"when": object.__new__(type("Opaque", (), {}))})


def test_tool_results_json_cannot_carry_go_back_to_the_model(agent_home, tmp_path):
    from llmfti.agents.app import create_app

    _register_odd_tools()
    deploy(agent_home, tmp_path, name="calc", tools=["calculator", "test_nan", "test_object"], max_tool_rounds=3)
    overflow = "*".join(["1e14"] * 30)
    gen = ScriptedGenerator([tool_call("calculator", expression=overflow), tool_call("test_nan"), tool_call("test_object"), "That number is too large."])
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=gen)) as c:
        r = c.post("/v1/deployments/calc/invoke", json={"question": f"What is {overflow}?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == "That number is too large."
    calc, nan, obj = body["tool_calls"]
    assert calc["result"].startswith("error:") and "finite" in calc["result"]
    assert nan["result"].startswith("error:") and "finite" in nan["result"]
    assert isinstance(obj["result"]["when"], str)  # an odd object becomes its text
    assert "finite" in gen.requests[1].messages[-1]["content"]  # the model was told
    row = read_log(agent_home, "calc")[body["request_id"]]
    assert row["status"] == "ok" and row["output"] == body["answer"]  # response and log agree


def test_exhausted_tool_budget_is_a_clear_502(agent_home, tmp_path):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path, name="loopy", tools=["calculator"], max_tool_rounds=2)
    gen = ScriptedGenerator([tool_call("calculator", expression="1+1")])
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=gen)) as c:
        r = c.post("/v1/deployments/loopy/invoke", json={"question": "add forever"})
        chat = c.post("/v1/chat/completions", json={"model": "loopy", "messages": [{"role": "user", "content": "add forever"}]})
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["type"] == "ToolBudgetExhausted" and "max_tool_rounds" in body["error"] and "<tool_call>" not in r.text
    assert len(gen.requests) == 2 * 3  # per request: 2 tool rounds, then one generation that still asked for a tool
    assert chat.status_code == 502 and chat.json()["type"] == "ToolBudgetExhausted"
    rows = read_log(agent_home, "loopy")
    assert rows[body["request_id"]]["status"] == "ToolBudgetExhausted" and "max_tool_rounds" in rows[body["request_id"]]["error"]


def test_an_answer_that_cannot_be_encoded_is_never_logged_ok(agent_home, tmp_path, monkeypatch):
    from llmfti.agents.app import create_app
    from llmfti.pipelines.inference import online

    deploy(agent_home, tmp_path, name="nan-score")
    real = online.citations
    monkeypatch.setattr(online, "citations", lambda p: [{**c, "score": float("nan")} for c in real(p)])
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator(["fine"]))) as c:
        r = c.post("/v1/deployments/nan-score/invoke", json={"question": "loops"})
        rows = app_log(c, "nan-score")
    assert r.status_code == 500 and r.json()["type"] == "ResponseUnencodable"
    assert rows[r.json()["request_id"]]["status"] == "ResponseUnencodable"  # response and log agree


def test_rejected_bodies_are_logged_as_objects_and_every_reader_takes_them(chat_client, agent_home):
    """Issue 27, finding 6: a JSON string body, or text/plain, was stored raw in the `request` column and
    broke `llmfti logs --json` and `replay` for every listing that held the row."""
    from typer.testing import CliRunner

    from llmfti.cli import app
    from llmfti.errors import ConfigError
    from llmfti.pipelines.inference.replay import replay

    ids = []
    for body, ctype in ((b'"CCC"', "application/json"), (b"plain words", "text/plain"), (b"5", "application/json")):
        r = chat_client.post("/v1/deployments/chat/invoke", content=body, headers={"content-type": ctype})
        assert r.status_code == 422, r.text
        ids.append(r.json()["request_id"])
    rows = app_log(chat_client, "chat")
    logged = [rows[i]["request"] for i in ids if i in rows]
    assert logged and all(isinstance(req, dict) and set(req) == {"rejected_body"} for req in logged)
    assert {"rejected_body": "CCC"} in logged
    listing = CliRunner().invoke(app, ["--home", str(agent_home), "logs", "chat", "--json", "--limit", "50"])
    assert listing.exit_code == 0, listing.output
    assert {r["request_id"] for r in json.loads(listing.stdout)["rows"]} >= set(rows) & set(ids)
    with pytest.raises(ConfigError, match="rejected before it reached the pipeline"):
        replay(agent_home, ids[0])


def test_openai_parameters_the_deployment_cannot_honour_are_a_422_that_says_so(chat_client):
    """Issue 27, finding 13: max_tokens=4 got 8 tokens and n=3 got one choice, silently."""
    ask = {"model": "chat", "messages": [{"role": "user", "content": "loops?"}]}
    r = chat_client.post("/v1/chat/completions", json={**ask, "n": 3})
    assert r.status_code == 422 and "n must be 1" in r.json()["error"]
    r = chat_client.post("/v1/chat/completions", json={**ask, "max_tokens": 1})
    assert r.status_code == 422 and "max_tokens (1) cannot be honoured" in r.json()["error"]
    assert chat_client.post("/v1/chat/completions", json={**ask, "n": 1, "max_tokens": 100000}).status_code == 200
