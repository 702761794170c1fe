"""Generation backends and the pipeline under load: dynamic batching, the OpenAI-compatible backend
against a second llmfti server, the tool loop, deploy and rollback during load."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from agent_fixtures import deploy, make_home
from server_process import start_server


def test_concurrent_requests_are_batched(tmp_path):
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.models.generation import GenerationRequest, GenerationSettings
    from llmfti.registry.deployments import DeploymentStore

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="batch", backend={"batch_window_ms": 200, "max_batch_size": 8, "dtype": "float32"})
    gen = build_runtime(home, DeploymentStore(home).active("batch"), RuntimeCache()).generator
    encoder = build_runtime(home, DeploymentStore(home).active("batch"), RuntimeCache()).encoder
    settings = GenerationSettings(max_new_tokens=6)
    prompts = [encoder.encode_prompt(f"question number {i}?").input_ids for i in range(6)]
    single = [gen.generate(GenerationRequest(input_ids=p, settings=settings)).text for p in prompts]
    before = gen.batches_run
    with ThreadPoolExecutor(6) as pool:
        batched = list(pool.map(lambda p: gen.generate(GenerationRequest(input_ids=p, settings=settings)).text, prompts))
    assert gen.batches_run - before < len(prompts)  # several requests shared a generate() call
    assert batched == single  # left padding with an attention mask does not change greedy outputs
    gen.close()


@pytest.mark.integration
def test_openai_backend_against_a_second_llmfti_server(tmp_path):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore

    upstream_home = make_home(tmp_path / "upstream")
    deploy(upstream_home, tmp_path, name="upstream-qa")
    proc, url = start_server(upstream_home)
    try:
        home = make_home(tmp_path / "client")
        # An llmfti server takes typed requests, never prompts: chain to it in chat mode.
        deploy(home, tmp_path, name="via-openai", backend={"kind": "openai", "base_url": f"{url}/v1", "model": "upstream-qa", "prompt_mode": "chat"})
        runtime = build_runtime(home, DeploymentStore(home).active("via-openai"), RuntimeCache())
        from llmfti.transforms.model_dependent import Context

        result = invoke(runtime, {"question": "What does __exit__ do?"})
        assert result["usage"]["completion_tokens"] > 0 and result["citations"]
        # What the backend sent: the chat messages our encoder's template built from our contexts.
        contexts = [Context(c["chunk_id"], c["text"], c["score"], c["source"]) for c in result["citations"]]
        messages = runtime.encoder.template.messages("What does __exit__ do?", contexts)
        direct = httpx.post(f"{url}/v1/chat/completions", json={"model": "upstream-qa", "messages": messages, "max_tokens": 8}, timeout=60).json()
        assert result["answer"] == direct["choices"][0]["message"]["content"]  # greedy on the server: same text
        request = _request(runtime, "What does __exit__ do?")
        request.messages = messages
        assert "".join(runtime.generator.stream(request)).strip() == result["answer"]
    finally:
        proc.kill()
        proc.wait()


def _request(runtime, question):
    from llmfti.models.generation import GenerationRequest

    enc = runtime.encoder.encode_prompt(question)
    return GenerationRequest(input_ids=enc.input_ids, messages=runtime.encoder.template.messages(question), settings=runtime.config.generation)


def test_tool_loop_with_scripted_generator(tmp_path):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="tools", tools=["calculator"])
    gen = ScriptedGenerator(['<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>', "The answer is 42."])
    runtime = build_runtime(home, DeploymentStore(home).active("tools"), RuntimeCache(), generator_override=gen)
    result = invoke(runtime, {"question": "What is 6 times 7?"})
    assert result["answer"] == "The answer is 42."
    assert result["tool_calls"] == [{"name": "calculator", "arguments": {"expression": "6*7"}, "result": 42.0}]
    second_prompt = gen.requests[1]
    assert second_prompt.messages[-1] == {"role": "tool", "name": "calculator", "content": "42.0"}
    assert second_prompt.tools[0]["function"]["name"] == "calculator"


def test_deploy_and_rollback_during_load_fail_no_request(tmp_path):
    from fastapi.testclient import TestClient

    from llmfti.agents.app import create_app
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.testing.scripted_generator import ScriptedGenerator

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="busy")
    app = create_app(home, api_keys=set(), generator_override=ScriptedGenerator(["ok"], delay_s=0.01), poll_interval_s=0.05)
    statuses, versions, stop = [], set(), threading.Event()
    with TestClient(app) as c:
        def client_loop():
            while not stop.is_set():
                r = c.post("/v1/deployments/busy/invoke", json={"question": "loops?"})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["versions"]["deployment"])

        threads = [threading.Thread(target=client_loop) for _ in range(4)]
        for t in threads:
            t.start()
        deploy(home, tmp_path, name="busy", retrieval={"k": 1})
        import time

        time.sleep(0.5)
        DeploymentStore(home).rollback("busy")
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}
    assert versions == {1, 2}  # requests were served by both tuples, none failed during the switches


def test_calculator_refuses_anything_but_arithmetic():
    from llmfti.tools import calculator

    assert calculator("-(1+2)/4") == -0.75
    for bad in ("9**9**9**9", "__import__('os')", "1" * 300):
        with pytest.raises(ValueError):
            calculator(bad)


def test_unreachable_openai_backend_is_a_5xx_not_a_client_error(tmp_path):
    from fastapi.testclient import TestClient

    from llmfti.agents.app import create_app
    from server_process import free_port

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="down", backend={"kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "x"})
    deploy(home, tmp_path, name="tooled", tools=["calculator"])
    with TestClient(create_app(home, api_keys=set())) as c:
        # The backend cannot be asked what it serves: the version does not load (fail closed), 503 until it does.
        r = c.post("/v1/deployments/down/invoke", json={"question": "q"})
        assert r.status_code == 503 and r.json()["type"] == "DeploymentUnavailable" and "127.0.0.1" not in r.text
        streamed = c.post("/v1/deployments/tooled/invoke?stream=true", json={"question": "q"})
        assert streamed.status_code == 422 and "tools" in streamed.json()["error"]
