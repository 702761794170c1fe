"""Streaming reports how generation really ended: a stream cut by max_new_tokens ends with
finish_reason "length" and the real token counts, on both streaming routes, in the log row, and from
every backend's `stream` (transformers with the tiny random model, the OpenAI-compatible client,
the scripted double)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from llmfti.testing.scripted_generator import ScriptedGenerator

REPLY = "one two three four five six"  # six "tokens" for the scripted generator


@pytest.fixture(scope="module")
def client(agent_home, tmp_path_factory):
    from llmfti.agents.app import create_app

    deploy(agent_home, tmp_path_factory.mktemp("cfg"), name="short", generation={"max_new_tokens": 3, "timeout_s": 10})
    deploy(agent_home, tmp_path_factory.mktemp("cfg"), name="roomy", generation={"max_new_tokens": 50, "timeout_s": 10})
    with TestClient(create_app(agent_home, api_keys=set(), generator_override=ScriptedGenerator([REPLY]))) as c:
        yield c


def logged(client, request_id: str) -> dict:
    client.app.state.log.flush()
    return client.app.state.log.query(request_id=request_id, limit=None)[0]


def sse_data(text: str) -> list:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("deployment, finish, tokens, answer", [("short", "length", 3, "one two three"), ("roomy", "stop", 6, REPLY)])
def test_openai_stream_ends_with_the_real_finish_reason_and_usage(client, deployment, finish, tokens, answer):
    body = {"model": deployment, "stream": True, "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "count"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip() == answer
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals == [finish]  # exactly one final chunk, with how generation really ended
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == tokens and usage["total_tokens"] == usage["prompt_tokens"] + tokens
    row = logged(client, chunks[0]["id"].removeprefix("chatcmpl-"))
    assert row["status"] == "ok" and row["completion_tokens"] == tokens and row["output"] == answer


def test_invoke_stream_done_event_carries_finish_reason_and_counts(client):
    r = client.post("/v1/deployments/short/invoke?stream=true", json={"question": "count"})
    events = r.text.strip().split("\n\n")
    assert events[-1].startswith("event: done")
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert done["answer"] == "one two three"
    assert done["usage"]["finish_reason"] == "length" and done["usage"]["completion_tokens"] == 3 and done["usage"]["prompt_tokens"] > 0
    assert logged(client, done["request_id"])["completion_tokens"] == 3
    blocking = client.post("/v1/deployments/short/invoke", json={"question": "count"}).json()
    assert blocking["usage"] == done["usage"] and blocking["answer"] == done["answer"]  # both paths agree


def test_openai_generator_stream_returns_the_servers_finish_reason_and_usage(client):
    """OpenAIGenerator.stream against this service's OpenAI-compatible route, over real HTTP."""
    import threading
    import time

    from llmfti.agents.serve import build_server
    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest, StreamResult
    from llmfti.models.openai_generator import OpenAIGenerator
    from server_process import free_port

    port = free_port()
    server = build_server(client.app, port=port, log_level="warning", lifespan="off")  # the app is already started
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "short", prompt_mode="chat")  # our service takes no prompts
        request = GenerationRequest(input_ids=[1, 2, 3], messages=[{"role": "user", "content": "count"}], settings=GenerationSettings(max_new_tokens=3))
        result = StreamResult(gen.stream(request))
        pieces = list(result)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert "".join(pieces).strip() == "one two three"
    g = result.generation
    assert g is not None and g.finish_reason == "length" and g.completion_tokens == 3
    assert g.prompt_tokens > 3  # the server's count of its own prompt, not our 3 placeholder ids


def test_scripted_generator_ends_by_length():
    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest, StreamResult

    gen = ScriptedGenerator(["alpha beta\ngamma delta"])
    request = GenerationRequest(input_ids=[5, 6], settings=GenerationSettings(max_new_tokens=3))
    result = StreamResult(gen.stream(request))
    assert list(result) == ["alpha", " beta", "\ngamma"]
    assert (result.generation.text, result.generation.finish_reason, result.generation.completion_tokens) == ("alpha beta\ngamma", "length", 3)
    assert gen.generate(request) == result.generation
    assert "".join(gen.stream(GenerationRequest(input_ids=[5], settings=GenerationSettings(max_new_tokens=4)))) == "alpha beta\ngamma delta"


def test_transformers_stream_returns_the_same_generation_as_generate():
    """The real streaming path (TextIteratorStreamer on the worker thread) with the tiny random model."""
    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest, StreamResult
    from llmfti.models.transformers_generator import TransformersGenerator
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_llama(len(tok))
    gen = TransformersGenerator(model, tok, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_batch_size=1, batch_window_ms=0)
    try:
        ids = list(tok.apply_chat_template([{"role": "user", "content": "What does yield do?"}], add_generation_prompt=True, tokenize=True, return_dict=False))
        request = GenerationRequest(input_ids=ids, settings=GenerationSettings(max_new_tokens=6, timeout_s=60))
        blocking = gen.generate(request)
        result = StreamResult(gen.stream(request))
        pieces = list(result)
        streamed = result.generation
        assert streamed is not None, "stream() must return the Generation"
        assert (streamed.finish_reason, streamed.completion_tokens, streamed.text) == (blocking.finish_reason, blocking.completion_tokens, blocking.text)
        assert streamed.prompt_tokens == len(ids) and "".join(pieces).strip() == streamed.text
        # The random model does not stop by itself within 6 tokens: cut by the limit, and said so.
        assert streamed.finish_reason == "length" and streamed.completion_tokens == 6
    finally:
        gen.close()
