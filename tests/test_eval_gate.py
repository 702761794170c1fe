"""The eval gate: suites, scoring on a deployment's own pipeline, pass/fail (hard and CI-bound),
stability, the HTML report, and promotion gated on a passing eval of the identical tuple."""

from __future__ import annotations

import json
import math
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from agent_fixtures import make_home
from eval_fixtures import CASES, GATE, GOOD, config, eval_home, run, stage, suite, write_suite  # noqa: F401 (fixtures)
from conftest import write
from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.pipelines.feature import ingest as run_ingest

# -- suites -----------------------------------------------------------------------------------------

def test_suite_version_is_a_content_hash(tmp_path):
    from llmfti.evaluation.suites import load_suite

    a = load_suite(write_suite(tmp_path, name="a"))
    b = load_suite(write_suite(tmp_path, name="b"))
    c = load_suite(write_suite(tmp_path, gate={**GATE, "thresholds": {**GATE["thresholds"], "mrr": 0.8}}, name="c"))
    assert a.version == b.version != c.version and len(a.cases) == 3
    write_suite(tmp_path / "evals", name="named")
    assert load_suite("named", root=tmp_path).version == a.version  # by name: evals/NAME under the root


@pytest.mark.parametrize("cases,gate,match", [
    (CASES, {**GATE, "thresholds": {"hit_at_kk": 0.5}}, "unknown metric"),
    (CASES + CASES[:1], GATE, "duplicate case ids"),
    ([{"id": "x", "question": "q", "reference": "r"}], GATE, "reference_contexts or source_ids"),
    (CASES, {**GATE, "judge": {"thresholds": {"vibes": 0.5}}}, "unknown judged metric"),
])
def test_invalid_suites_are_refused_naming_the_problem(tmp_path, cases, gate, match):
    from llmfti.evaluation.suites import load_suite

    with pytest.raises(ConfigError, match=match):
        load_suite(write_suite(tmp_path, cases=cases, gate=gate))
    with pytest.raises(NotFoundError):
        load_suite("no-such-suite", root=tmp_path)


def test_demo_suite_is_written_from_the_python_reference():
    from pydoc_data.topics import topics

    from llmfti.evaluation.metrics import normalize_ws
    from llmfti.evaluation.suites import load_suite

    s = load_suite(Path(__file__).resolve().parents[1] / "evals" / "python-reference")
    assert len(s.cases) >= 40 and all(c.reference_contexts and c.source_ids for c in s.cases)
    text = {f"{k}.md": normalize_ws(v) for k, v in topics.items()}
    found = [any(normalize_ws(ctx) in text.get(src, "") for src in c.source_ids) for c in s.cases for ctx in c.reference_contexts]
    # Verbatim from this Python's topics; another CPython version may reword a few passages.
    assert sum(found) / len(found) >= 0.9


# -- scoring and the gate -----------------------------------------------------------------------------

def test_good_deployment_passes_and_the_result_names_the_tuple(eval_home, suite):
    from llmfti.registry import ModelRegistry

    record = stage(eval_home)
    result = run(eval_home, suite, record)
    assert result["passed"], result["checks"]
    assert result["metrics"]["hit_at_k"] == 1.0 and result["metrics"]["mrr"] == 1.0
    assert {"rouge_score", "semantic_similarity", "non_llm_context_recall"} <= set(result["cases"][0]["scores"])
    assert result["commit"] is not None and result["suite_version"] == suite.version and result["deployment_version"] == record["version"]
    assert result["checks"][-1] == {"metric": "faithfulness", "kind": "judged", "threshold": 0.5, "value": None, "status": "skipped"}
    stored = ModelRegistry(eval_home).get("tiny:1").evals[-1]
    assert stored["tuple_key"] == record["checks"]["tuple_key"] == result["tuple_key"] and stored["passed"]
    assert (eval_home / stored["artifact"]).is_file() and "cases" not in stored


@pytest.mark.parametrize("broken", [{"retrieval": {"k": 0}}, {"feature_group": "other:1"}], ids=["k=0", "wrong-feature-group"])
def test_broken_deployment_fails_the_gate(eval_home, suite, broken):
    result = run(eval_home, suite, stage(eval_home, **broken), store=False)
    assert not result["passed"]
    assert {"hit_at_k", "mrr", "non_llm_context_recall"} <= set(result["failing"])
    assert result["metrics"]["hit_at_k"] == 0.0


def test_gate_is_stable_across_two_runs(eval_home, suite):
    record = stage(eval_home)
    first, second = (run(eval_home, suite, record, store=False) for _ in range(2))
    assert first["passed"] == second["passed"] and first["metrics"] == second["metrics"]
    assert [c["scores"] for c in first["cases"]] == [c["scores"] for c in second["cases"]]
    assert [c["answer"] for c in first["cases"]] == [c["answer"] for c in second["cases"]]


def test_judged_metrics_use_the_lower_bound_of_a_confidence_interval():
    from llmfti.evaluation.gate import apply_gate
    from llmfti.evaluation.judge import confidence_interval
    from llmfti.evaluation.suites import GateConfig

    ci = confidence_interval([0.5, 0.6, 0.7], 0.95)
    assert math.isclose(ci["mean"], 0.6) and math.isclose(ci["lower"], 0.6 - 4.302653 * 0.1 / math.sqrt(3), rel_tol=1e-5)
    gate = GateConfig.model_validate({"thresholds": {"hit_at_k": 0.5}, "judge": {"thresholds": {"faithfulness": 0.5}}})
    status = lambda runs: apply_gate(gate, {"hit_at_k": 1.0}, {"faithfulness": runs})["checks"][1]["status"]  # noqa: E731
    assert status([0.70, 0.71, 0.69]) == "pass"
    assert status([0.30, 0.31, 0.29]) == "fail"
    assert status([0.9, 0.2, 0.8]) == "inconclusive"  # mean 0.63 > 0.5, but a noisy judge must not pass it by luck
    assert not apply_gate(gate, {"hit_at_k": 1.0}, {"faithfulness": [0.9, 0.2, 0.8]})["passed"]
    assert status([0.7, None]) == "inconclusive"  # one usable run: no interval, no verdict
    assert apply_gate(gate, {"hit_at_k": 0.4})["failing"] == ["hit_at_k"]  # deterministic: a hard threshold


def test_judge_runs_n_times_and_is_configured_by_environment(eval_home, suite):
    from llmfti.evaluation.judge import resolve_judge
    from llmfti.evaluation.suites import JudgeSettings

    assert resolve_judge(JudgeSettings(), env={}) is None
    env = {"LLMFTI_JUDGE_BASE_URL": "http://127.0.0.1:9/v1", "LLMFTI_JUDGE_MODEL": "judge", "LLMFTI_JUDGE_RUNS": "5"}
    resolved = resolve_judge(JudgeSettings(runs=3), env=env)
    assert (resolved.base_url, resolved.model, resolved.runs) == ("http://127.0.0.1:9/v1", "judge", 5)

    class NoisyJudge:
        name = "noisy"
        calls = 0

        def __init__(self, centre):
            self.rng, self.centre = random.Random(0), centre

        def score(self, case, *, answer, contexts):
            NoisyJudge.calls += 1
            return {m: min(1.0, max(0.0, self.centre + self.rng.uniform(-0.02, 0.02))) for m in ("faithfulness", "answer_relevancy", "factual_correctness")}

    good = run(eval_home, suite, stage(eval_home), judge=NoisyJudge(0.8), store=False)
    assert NoisyJudge.calls == 3 * len(suite.cases)  # runs (from gate.yaml) x cases
    check = next(c for c in good["checks"] if c["metric"] == "faithfulness")
    assert good["passed"] and check["status"] == "pass" and check["runs"] == 3 and check["lower"] < check["value"] < check["upper"]
    assert len(good["cases"][0]["judged"]["faithfulness"]) == 3
    bad = run(eval_home, suite, stage(eval_home), judge=NoisyJudge(0.2), store=False)
    assert not bad["passed"] and bad["failing"] == ["faithfulness"]


def test_ragas_judge_builds_offline_with_an_openai_compatible_endpoint():
    from llmfti.evaluation.judge import RagasJudge
    from llmfti.evaluation.metrics import ragas_embeddings
    from llmfti.evaluation.suites import JudgeSettings
    from llmfti.testing import HashEmbedder

    emb = ragas_embeddings(HashEmbedder(16))
    judge = RagasJudge(JudgeSettings(base_url="http://127.0.0.1:9/v1", model="judge"), emb)  # builds, calls nothing
    assert set(judge.metrics) == {"faithfulness", "answer_relevancy", "factual_correctness"}
    assert len(emb.embed_text("with statement")) == 16 and len(emb.embed_texts(["a", "b"])) == 2


def _scripted_judge_server(seen: list):
    """An OpenAI-compatible judge that answers every structured-output request (instructor JSON mode:
    the schema is in the prompt) with a schema-shaped reply: the real Ragas metrics run end to end."""
    import httpx

    def fake(schema, defs, name=""):
        if "$ref" in schema:
            return fake(defs[schema["$ref"].split("/")[-1]], defs, name)
        if "anyOf" in schema:
            return fake(schema["anyOf"][0], defs, name)
        kind = schema.get("type")
        if kind == "object":
            return {k: fake(v, defs, k) for k, v in schema.get("properties", {}).items()}
        if kind == "array":
            return [fake(schema.get("items", {}), defs, name)]
        if kind in ("integer", "number"):
            return 0 if name == "noncommittal" else 1
        return "What does the with statement wrap a block with?"

    def handler(request):
        body = json.loads(request.content)
        text = "\n".join(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in body["messages"])
        schema, _ = json.JSONDecoder().raw_decode(text[text.index("{", text.index("json_schema")):])
        seen.append(schema.get("title"))
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "usage": {
            "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": json.dumps(fake(schema, schema.get("$defs", {})))}}]})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_ragas_judge_end_to_end_with_a_scripted_openai_compatible_server():
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory

    from llmfti.evaluation.judge import RagasJudge
    from llmfti.evaluation.metrics import ragas_embeddings
    from llmfti.evaluation.suites import EvalCase, JudgeSettings
    from llmfti.testing import HashEmbedder

    seen: list = []
    client = AsyncOpenAI(base_url="http://judge.test/v1", api_key="unused", http_client=_scripted_judge_server(seen))
    judge = RagasJudge(JudgeSettings(model="judge"), ragas_embeddings(HashEmbedder(64)), llm=llm_factory("judge", client=client))
    case = EvalCase(**CASES[0])
    scores = judge.score(case, answer="It wraps a block with a context manager.", contexts=[case.reference_contexts[0]])
    assert scores["faithfulness"] == 1.0 and scores["factual_correctness"] == 1.0 and scores["answer_relevancy"] > 0.99
    assert {"StatementGeneratorOutput", "NLIStatementOutput", "AnswerRelevanceOutput", "ClaimDecompositionOutput"} <= set(seen)


# -- the report -----------------------------------------------------------------------------------------

class _Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.case_rows, self.worst, self.text = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr" and a.get("class") == "case":
            self.case_rows.append(a["data-case-id"])
        if tag == "li" and a.get("class") == "worst":
            self.worst.append(a["data-case-id"])

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_shows_cases_worst_cases_and_versions(eval_home, suite, tmp_path):
    from llmfti.evaluation.report import write_report

    result = run(eval_home, suite, stage(eval_home, retrieval={"k": 1}), store=False)
    result["cases"][0]["answer"] = "<script>alert(1)</script>"  # answers are escaped, never markup
    path = write_report(result, tmp_path / "r" / "report.html")
    html = path.read_text()
    parsed = _Structure()
    parsed.feed(html)
    assert {"verdict", "versions", "checks", "worst-cases", "cases", "behaviour"} <= parsed.ids
    b = result["behaviour"]
    assert b["answers"] == len(suite.cases) and b["mean_words"] > 0 and 0 <= b["repetition_rate"] <= 1
    assert parsed.case_rows == [c.id for c in suite.cases]
    assert parsed.worst == result["worst_cases"] and len(parsed.worst) == 2
    text = " ".join(parsed.text)
    assert result["tuple_key"] in text and suite.version in text and "tiny:1" in text
    assert "<script>" not in html and "&lt;script&gt;" in html


# -- promotion ----------------------------------------------------------------------------------------

def test_promotion_needs_a_passing_eval_of_the_identical_tuple(tmp_path, suite):
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.deployment import promote
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore

    home = make_home(tmp_path)
    store = DeploymentStore(home)
    with pytest.raises(IncompatibleError, match="names no gate suites"):
        promote(store, config())  # nothing can qualify a deployment that names no gate suite

    def gated(**kw):
        return config(gate_suites=[str(suite.path)], **kw)

    with pytest.raises(IncompatibleError, match="no passing eval"):
        promote(store, gated())
    with pytest.raises(NotFoundError):
        store.active("qa")  # nothing activated; staging never activates either
    failing = run(home, suite, stage(home, retrieval={"k": 0}))
    assert not failing["passed"]
    with pytest.raises(IncompatibleError, match="no passing eval"):
        promote(store, gated(retrieval={"k": 0}))  # a failing eval does not qualify its tuple
    staged = stage(home)
    assert run(home, suite, staged)["passed"]
    with pytest.raises(NotFoundError):
        store.active("qa")
    live = promote(store, gated(description="same tuple, other text"))
    assert live["version"] > staged["version"] and not live["forced"] and store.active("qa")["version"] == live["version"]
    assert live["checks"]["eval"]["deployment_version"] == staged["version"]
    with pytest.raises(IncompatibleError):
        promote(store, gated(generation={"max_new_tokens": 9, "timeout_s": 30}))  # other settings: another tuple
    with pytest.raises(IncompatibleError):
        promote(store, gated(), suite="other-suite")
    # A new commit under a `latest` policy is a new tuple: it needs a fresh eval.
    write(tmp_path / "corpus" / "more.md", "# More\n\nA new document arrives.\n")
    run_ingest(FeatureStore(home).feature_group("docs:1"), [str(tmp_path / "corpus")], config=FeatureConfig(embedder={"model": "hash-64"}))
    with pytest.raises(IncompatibleError, match="@ commit"):
        promote(store, gated())
    with pytest.raises(ConfigError, match="--reason"):
        promote(store, gated(), force=True)
    forced = promote(store, gated(), force=True, reason="hotfix: eval host down")
    assert forced["forced"] and forced["reason"] == "hotfix: eval host down"
    assert [h["action"] for h in store.history("qa")][-1] == "deploy" and store.active("qa")["version"] == forced["version"]
    with pytest.raises(ConfigError, match="never active"):
        store.rollback("qa", to=staged["version"])  # rolling "back" to a staged version would skip the gate
    assert store.rollback("qa")["version"] == live["version"]


def test_cli_eval_and_deploy_flags(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llmfti.cli import app

    home = make_home(tmp_path)
    suite_dir = write_suite(tmp_path / "suites")
    cfg = tmp_path / "qa.yaml"
    cfg.write_text(yaml.safe_dump({**GOOD, "gate_suites": [str(suite_dir)]}))
    cli = CliRunner()
    invoke = lambda *args: cli.invoke(app, ["--home", str(home), *args])  # noqa: E731
    # (CliRunner calls the app, not main(): LlmftiErrors surface as exceptions instead of exit codes 4 and 2)
    refused = invoke("deploy", str(cfg), "--json")
    assert isinstance(refused.exception, IncompatibleError) and "no passing eval" in str(refused.exception)
    assert isinstance(invoke("deploy", str(cfg), "--force").exception, ConfigError)
    staged = invoke("deploy", str(cfg), "--stage", "--json")
    assert staged.exit_code == 0 and json.loads(staged.stdout)["staged"] is True
    report = tmp_path / "report.html"
    ok = invoke("eval", str(suite_dir), "--deployment", "qa", "--staged", "--json", "--report", str(report))
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)  # exactly one JSON document
    assert doc["passed"] and doc["report"] == str(report) and report.is_file() and len(doc["cases"]) == 3
    promoted = invoke("deploy", str(cfg), "--json")
    assert promoted.exit_code == 0 and json.loads(promoted.stdout)["checks"]["eval"]["suite"] == "mini"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**GOOD, "gate_suites": [str(suite_dir)], "retrieval": {"k": 0}}))
    assert invoke("deploy", str(broken), "--stage").exit_code == 0
    failed = invoke("eval", str(suite_dir), "--deployment", "qa", "--staged", "--json")
    assert failed.exit_code == 1 and json.loads(failed.stdout)["passed"] is False


def test_cli_and_evaluation_package_import_neither_ragas_nor_torch():
    import subprocess
    import sys

    code = "import sys, llmfti, llmfti.cli, llmfti.evaluation.gate; print(sorted(m for m in ('ragas', 'torch', 'langchain_core') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
