"""Batch inference (`llmfti batch-infer`): a deployment over a file of requests runs the online
pipeline itself (same answers, citations and versions as `invoke`), writes one output line per input
line in order, and logs every prediction with origin "batch"; the vLLM offline path is driven through
the same interface by a stand-in engine that records what vLLM would receive (token-id prompts, a
LoRARequest per prompt, an engine built with enable_lora)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from agent_fixtures import deploy, make_home

QUESTIONS = ["What does the with statement do?", "How does a for loop work?", "What do generators yield?"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    h = make_home(root)
    deploy(h, root, force=True)
    return h


def write_requests(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def log_rows(home, request_ids):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home), maintenance=False)
    try:
        rows = {rid: log.query(request_id=rid, limit=None) for rid in request_ids}
    finally:
        log.close()
    return rows


def test_batch_answers_equal_online_answers_in_order_and_are_logged_as_batch(home, tmp_path):
    from llmfti.pipelines.batch_inference import batch_infer
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore

    lines = [json.dumps({"question": q}) for q in QUESTIONS] + ["{not json", json.dumps({"question": ""}), json.dumps({"question": QUESTIONS[0], "k": 1})]
    requests = write_requests(tmp_path / "questions.jsonl", lines)
    summary = batch_infer("docs-qa", requests, tmp_path / "out" / "answers.jsonl", home=home)
    out = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]

    assert [o["line"] for o in out] == [1, 2, 3, 4, 5, 6]  # one line per input line, input order
    assert summary.requests == 6 and summary.ok == 4 and summary.unreadable == 1 and summary.failed == 1
    assert out[3]["status"] == "unreadable" and out[3]["request_id"] is None
    assert out[4]["status"] == "RequestInvalid" and out[4]["error"]
    runtime = build_runtime(home, DeploymentStore(home).active("docs-qa"), RuntimeCache())
    try:
        for o, line in zip([out[0], out[1], out[2], out[5]], [lines[0], lines[1], lines[2], lines[5]]):
            online = invoke(runtime, json.loads(line))  # the service's pipeline, same tuple, greedy decoding
            assert o["status"] == "ok" and o["answer"] == online["answer"]
            assert [c["chunk_id"] for c in o["citations"]] == [c["chunk_id"] for c in online["citations"]]
            assert o["versions"] == online["versions"] and o["versions"]["model"] == "tiny:1" and o["versions"]["commit"] is not None
    finally:
        runtime.generator.close()
    assert len(out[5]["citations"]) <= 1  # the request's own k reached retrieval

    logged = log_rows(home, [o["request_id"] for o in out if o["request_id"]])
    assert all(len(rows) == 1 for rows in logged.values())  # every prediction, failed ones too, exactly once
    rows = {rid: r[0] for rid, r in logged.items()}
    assert {r["origin"] for r in rows.values()} == {"batch"}
    assert rows[out[4]["request_id"]]["status"] == "RequestInvalid"
    assert rows[out[0]["request_id"]]["output"] == out[0]["answer"] and rows[out[0]["request_id"]]["deployment"] == "docs-qa"


class _StandInLLM:
    """Records what vLLM's offline engine would get and answers from the prompt ids."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        _StandInLLM.instances.append(self)

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        self.calls.append({"prompts": prompts, "params": sampling_params, "lora": lora_request})
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f" answer to {len(p['prompt_token_ids'])} ids", token_ids=[5, 6, 7], finish_reason="stop")])
                for p in prompts]


def _stand_in_api():
    return SimpleNamespace(LLM=_StandInLLM, SamplingParams=lambda **kw: SimpleNamespace(**kw),
                           LoRARequest=lambda name, int_id, path: SimpleNamespace(lora_name=name, lora_int_id=int_id, lora_path=path))


def test_vllm_offline_path_gets_token_ids_and_a_lora_request_per_prompt(tmp_path):
    from llmfti.pipelines.batch_inference import batch_infer
    from llmfti.pipelines.inference.online import prepare
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry import ModelRegistry
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.testing.scripted_generator import ScriptedGenerator
    from llmfti.testing.tiny_models import save_tiny_adapter

    h = make_home(tmp_path)
    reg = ModelRegistry(h)
    adapter = save_tiny_adapter(reg.base_path("tiny"), tmp_path / "adapter")
    lora = reg.register_version("tiny", base_model="tiny", adapter_dir=str(adapter), encoder=reg.load_encoder("tiny:1"))  # tiny:2
    deploy(h, tmp_path, force=True, name="lora-qa", model=lora.ref)
    _StandInLLM.instances.clear()
    requests = write_requests(tmp_path / "q.jsonl", [json.dumps({"question": q}) for q in QUESTIONS])
    summary = batch_infer("lora-qa", requests, tmp_path / "a.jsonl", home=h, generator="vllm", vllm_api=_stand_in_api())

    assert summary.generator == "vllm" and summary.ok == 3
    (llm,) = _StandInLLM.instances
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["model"] == str(reg.base_path("tiny"))
    assert llm.kwargs["tokenizer"] == str(reg.get(lora.ref).tokenizer_dir)
    prompts = [p for call in llm.calls for p in call["prompts"]]
    loras = [r for call in llm.calls for r in call["lora"]]
    assert len(prompts) == len(loras) == 3
    assert {r.lora_path for r in loras} == {str(reg.get(lora.ref).adapter_dir)}
    assert all(p.max_tokens == 8 and p.temperature == 0.0 for call in llm.calls for p in call["params"])
    # The prompt ids are the online pipeline's: what the encoder builds for that question at that commit.
    runtime = build_runtime(h, DeploymentStore(h).active("lora-qa"), RuntimeCache(), ScriptedGenerator(["x"]))
    expected = sorted(tuple(prepare(runtime, {"question": q}).encoded.input_ids) for q in QUESTIONS)
    assert sorted(tuple(p["prompt_token_ids"]) for p in prompts) == expected
    out = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert all(o["answer"].startswith("answer to") and o["usage"]["completion_tokens"] == 3 for o in out)
    assert {r[0]["origin"] for r in log_rows(h, [o["request_id"] for o in out]).values()} == {"batch"}


def test_vllm_generator_refuses_a_deployment_that_calls_a_server(home, tmp_path):
    from llmfti.errors import ConfigError
    from llmfti.pipelines.batch_inference import _wants_vllm
    from llmfti.registry.deployments import DeploymentStore

    record = DeploymentStore(home).active("docs-qa")
    assert _wants_vllm(record, "vllm", None) is True
    assert _wants_vllm(record, "deployment", _stand_in_api()) is False
    served = record.model_copy(update={"config": {**record.config, "backend": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}}})
    with pytest.raises(ConfigError, match="already calls a server"):
        _wants_vllm(served, "vllm", None)


def test_cli_batch_infer_json_and_errors(home, tmp_path):
    from llmfti.cli import app
    from llmfti.errors import ConfigError, NotFoundError

    runner = CliRunner()
    requests = write_requests(tmp_path / "q.jsonl", [json.dumps({"question": QUESTIONS[1]}), "[1, 2]"])
    result = runner.invoke(app, ["--home", str(home), "batch-infer", "docs-qa", "--input", str(requests), "--output", str(tmp_path / "a.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] == 1 and doc["unreadable"] == 1 and doc["engine"] == "local" and doc["generator"] == "transformers"
    failing = runner.invoke(app, ["--home", str(home), "batch-infer", "docs-qa", "--input", str(requests), "--output", str(tmp_path / "b.jsonl"),
                                  "--fail-on-error", "--json"])
    assert failing.exit_code == 1
    # Errors reach main() as LlmftiErrors, which map them to exit codes (3: not found, 2: usage).
    missing = runner.invoke(app, ["--home", str(home), "batch-infer", "nope", "--input", str(requests), "--output", str(tmp_path / "c.jsonl")])
    assert isinstance(missing.exception, NotFoundError) and missing.exception.exit_code == 3
    no_input = runner.invoke(app, ["--home", str(home), "batch-infer", "docs-qa", "--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "d.jsonl")])
    assert isinstance(no_input.exception, NotFoundError) and "does not exist" in str(no_input.exception)
    engine = runner.invoke(app, ["--home", str(home), "batch-infer", "docs-qa", "--input", str(requests), "--output", str(tmp_path / "e.jsonl"), "--engine", "spark"])
    assert isinstance(engine.exception, ConfigError) and engine.exception.exit_code == 2
