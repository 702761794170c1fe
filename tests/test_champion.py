"""Champion/challenger: a new tuple must not be significantly worse than the one it replaces, case by
case on the same suite version; the comparison is stored with the eval record, shown by `deployments
show` and the HTML report; promotion refuses a challenger without it, unless forced with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_fixtures import make_home
from test_eval_gate import GOOD, config, write_suite


def _cases(scores: list[float], metric: str = "m") -> list[dict]:
    return [{"id": f"c{i}", "scores": {metric: s}} for i, s in enumerate(scores)]


def test_paired_bootstrap_flags_real_regressions_only():
    from llmfti.evaluation.compare import compare_paired

    champ = _cases([0.8, 0.6, 0.9, 0.7, 0.5, 0.9, 0.8, 0.6, 0.7, 0.9])
    same = compare_paired(champ, champ, ["m"])
    assert same["passed"] and same["metrics"]["m"]["mean_diff"] == 0
    noisy = compare_paired(champ, _cases([s + (0.01 if i % 2 else -0.01) for i, s in enumerate([0.8, 0.6, 0.9, 0.7, 0.5, 0.9, 0.8, 0.6, 0.7, 0.9])]), ["m"])
    assert noisy["passed"]  # noise within the tolerance
    worse = compare_paired(champ, _cases([s - 0.3 for s in [0.8, 0.6, 0.9, 0.7, 0.5, 0.9, 0.8, 0.6, 0.7, 0.9]]), ["m"])
    assert not worse["passed"] and worse["worse_on"] == ["m"] and worse["metrics"]["m"]["upper"] < -0.02
    better = compare_paired(champ, _cases([min(1.0, s + 0.2) for s in [0.8, 0.6, 0.9, 0.7, 0.5, 0.9, 0.8, 0.6, 0.7, 0.9]]), ["m"])
    assert better["passed"] and better["metrics"]["m"]["lower"] > 0
    assert compare_paired(champ, worse_cases := _cases([0.1] * 10), ["m"]) == compare_paired(champ, worse_cases, ["m"])  # seeded


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_home(tmp_path_factory.mktemp("champion"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from llmfti.evaluation.suites import load_suite

    gate = {"thresholds": {"hit_at_k": 0.0, "mrr": 0.0, "rouge_score": 0.0}, "worst_cases": 1}
    return load_suite(write_suite(tmp_path_factory.mktemp("suites"), gate=gate))


def gated(suite, **kw):
    return config(gate_suites=[str(suite.path)], **kw)


def test_a_worse_challenger_fails_its_eval_and_promotion_and_the_report_says_why(home, suite, tmp_path):
    from llmfti.errors import IncompatibleError
    from llmfti.evaluation.report import render_report
    from llmfti.pipelines.deployment import promote
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.registry.deployments import DeploymentStore

    store = DeploymentStore(home)
    champion = promote(store, gated(suite), force=True, reason="first version, test")
    challenger = promote(store, gated(suite, retrieval={"k": 0}), stage=True)  # retrieves nothing: hit@k collapses
    res = run_eval(home, suite, challenger)
    comp = res["comparison"]
    assert comp["champion"]["deployment_version"] == champion["version"] and comp["champion"]["evaluated_now"]
    assert "hit_at_k" in comp["worse_on"] and not res["passed"] and "champion:hit_at_k" in res["failing"]
    html = render_report(res)
    assert "id='comparison'" in html and "SIGNIFICANTLY WORSE" in html
    with pytest.raises(IncompatibleError):
        promote(store, gated(suite, retrieval={"k": 0}))
    forced = promote(store, gated(suite, retrieval={"k": 0}), force=True, reason="test: accepted regression")
    assert forced["forced"] and forced["reason"].startswith("test")


def test_an_equal_challenger_passes_and_its_comparison_is_shown(home, suite, tmp_path):
    from llmfti.pipelines.deployment import promote
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.registry.deployments import DeploymentStore

    store = DeploymentStore(home)
    promote(store, gated(suite), force=True, reason="reset the champion")  # the good tuple serves again
    run_eval(home, suite, store.active("qa"))  # its own eval (no comparison: it is the champion)
    challenger = promote(store, gated(suite, generation={"max_new_tokens": 8, "timeout_s": 30, "top_p": 0.9}), stage=True)  # greedy: same answers
    res = run_eval(home, suite, challenger)
    assert res["comparison"]["passed"] and not res["comparison"]["champion"]["evaluated_now"]
    promoted = promote(store, gated(suite, generation={"max_new_tokens": 8, "timeout_s": 30, "top_p": 0.9}))
    assert promoted["checks"]["eval"]["comparison"]["passed"]
    assert promoted["checks"]["eval"]["comparison"]["champion"]["deployment_version"] < promoted["version"]
    from typer.testing import CliRunner

    from llmfti.cli import app

    shown = CliRunner().invoke(app, ["--home", str(home), "deployments", "show", "qa", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["checks"]["eval"]["comparison"]["passed"] is True
