"""Under `commit: latest` the gate covers what is served: a new feature-group commit is not served
until a passing eval of it exists; the last evaluated commit keeps serving meanwhile; every log row
says which commit served it and whether that commit was evaluated."""

from __future__ import annotations

import pytest

from agent_fixtures import make_home
from conftest import write
from llmfti.pipelines.feature import ingest as run_ingest
from test_eval_gate import config, write_suite


@pytest.fixture
def gated_home(tmp_path):
    from llmfti.evaluation.suites import load_suite
    from llmfti.pipelines.deployment import promote
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.registry.deployments import DeploymentStore

    home = make_home(tmp_path)
    suite = load_suite(write_suite(tmp_path / "suites", gate={"thresholds": {"hit_at_k": 0.5}}))
    store = DeploymentStore(home)
    staged = promote(store, config(gate_suites=[str(suite.path)]), stage=True)
    assert run_eval(home, suite, staged)["passed"]
    promote(store, config(gate_suites=[str(suite.path)]))
    return home, suite, store


def _serve(home, store):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.testing.scripted_generator import ScriptedGenerator

    runtime = build_runtime(home, store.active("qa"), RuntimeCache(), ScriptedGenerator(["ok [1]"]))
    return runtime, lambda: invoke(runtime, {"question": "What does a for loop iterate over?"})["versions"]


def test_a_new_commit_serves_only_after_its_eval(gated_home, tmp_path):
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.store import FeatureStore

    home, suite, store = gated_home
    runtime, ask = _serve(home, store)
    first = ask()
    assert first["commit_evaluated"] is True
    fg = FeatureStore(home).feature_group("docs:1")
    write(tmp_path / "more" / "new.md", "# New\n\nA document that arrived after the eval.\n")
    run_ingest(fg, [str(tmp_path / "more")], config=FeatureConfig(embedder={"model": "hash-64"}))
    newest = fg.resolve_commit(None)
    assert newest > first["commit"]
    runtime.commits.recheck_s = 0  # look again at once (the server waits a few seconds between checks)
    assert ask() == first  # the unevaluated commit is not served
    result = run_eval(home, suite, store.active("qa"))  # the documented path: evaluate the active deployment
    assert result["passed"] and result["commit"] == str(newest)
    now = ask()
    assert now["commit"] == newest and now["commit_evaluated"] is True


def test_log_rows_record_the_commit_and_whether_it_was_evaluated(gated_home):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home, _, store = gated_home
    runtime, _ = _serve(home, store)
    log = InferenceLog(FeatureStore(home))
    out = invoke(runtime, {"question": "loops?"}, log=log)
    log.close()
    row = InferenceLog(FeatureStore(home)).query("qa", request_id=out["request_id"])[0]
    assert row["commit"] == out["versions"]["commit"] and row["commit_evaluated"] is True


def test_a_forced_deployment_says_its_commit_was_not_evaluated(tmp_path):
    from llmfti.pipelines.deployment import promote
    from llmfti.registry.deployments import DeploymentStore

    home = make_home(tmp_path)
    store = DeploymentStore(home)
    promote(store, config(gate_suites=[str(write_suite(tmp_path / "suites"))]), force=True, reason="test: no eval host")
    _, ask = _serve(home, store)
    assert ask()["commit_evaluated"] is False
