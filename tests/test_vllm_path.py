"""The vLLM path keeps the fingerprint: the openai backend sends the encoder's exact prompt ids to
/v1/completions (chat messages only in chat mode), the log row records the mode, and a model version
with a LoRA adapter is refused unless the server serves it as a LoRA module (/v1/models), against a
scripted OpenAI-compatible server on loopback that records what it receives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_fixtures import deploy, make_home


class _Server(BaseHTTPRequestHandler):
    received: list = []
    models = [{"id": "tiny-base", "object": "model", "parent": None}, {"id": "tiny-lora", "object": "model", "parent": "tiny-base"}]

    def log_message(self, *args):
        pass

    def _send(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"object": "list", "data": self.models})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.received.append((self.path, body))
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        if self.path.endswith("/chat/completions"):
            self._send({"id": "c", "object": "chat.completion", "created": 0, "model": body["model"], "usage": usage,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from chat"}, "finish_reason": "stop"}]})
        else:
            self._send({"id": "c", "object": "text_completion", "created": 0, "model": body["model"], "usage": usage,
                        "choices": [{"index": 0, "text": " from ids", "finish_reason": "length"}]})


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from llmfti.registry import ModelRegistry
    from llmfti.testing.tiny_models import save_tiny_adapter

    root = tmp_path_factory.mktemp("vllm")
    h = make_home(root)
    reg = ModelRegistry(h)
    adapter = save_tiny_adapter(h / "artifacts" / "models" / "base" / "tiny", root / "adapter")
    reg.register_version("tiny", base_model="tiny", adapter_dir=str(adapter), encoder=reg.load_encoder("tiny:1"))  # tiny:2, a LoRA version
    return h


def _runtime(home, record):
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime

    return build_runtime(home, record, RuntimeCache())


def test_token_ids_mode_sends_the_fingerprinted_prompt_and_logs_the_mode(home, server, tmp_path):
    from llmfti.pipelines.inference.online import invoke, prepare
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    record = deploy(home, tmp_path, name="ids", backend={"kind": "openai", "base_url": server, "model": "tiny-base"})
    runtime = _runtime(home, record)
    _Server.received.clear()
    log = InferenceLog(FeatureStore(home))
    out = invoke(runtime, {"question": "What does __exit__ do?"}, log=log)
    log.close()
    path, body = _Server.received[-1]
    assert path.endswith("/v1/completions") and "messages" not in body
    assert body["prompt"] == prepare(runtime, {"question": "What does __exit__ do?"}).encoded.input_ids  # exactly the encoder's ids
    assert out["answer"] == "from ids" and out["usage"]["finish_reason"] == "length"
    row = InferenceLog(FeatureStore(home)).query("ids", request_id=out["request_id"])[0]
    assert row["prompt_mode"] == "token_ids"


def test_chat_mode_sends_messages_and_says_so(home, server, tmp_path):
    from llmfti.pipelines.inference.online import invoke

    record = deploy(home, tmp_path, name="chat", backend={"kind": "openai", "base_url": server, "model": "tiny-base", "prompt_mode": "chat"})
    runtime = _runtime(home, record)
    _Server.received.clear()
    out = invoke(runtime, {"question": "loops?"})
    path, body = _Server.received[-1]
    assert path.endswith("/chat/completions") and body["messages"][-1]["role"] == "user" and out["answer"] == "from chat"
    assert runtime.model_info["prompt_mode"] == "chat"


def test_a_lora_version_must_be_served_as_a_lora_module(home, server, tmp_path):
    from llmfti.errors import IncompatibleError

    as_base = deploy(home, tmp_path, name="lora-as-base", model="tiny:2", backend={"kind": "openai", "base_url": server, "model": "tiny-base"})
    with pytest.raises(IncompatibleError, match="ignore the adapter"):
        _runtime(home, as_base)
    missing = deploy(home, tmp_path, name="lora-missing", model="tiny:2", backend={"kind": "openai", "base_url": server, "model": "other"})
    with pytest.raises(IncompatibleError, match="does not serve 'other'"):
        _runtime(home, missing)
    ok = deploy(home, tmp_path, name="lora-ok", model="tiny:2", backend={"kind": "openai", "base_url": server, "model": "tiny-lora"})
    assert _runtime(home, ok).generator.model == "tiny-lora"
