"""The eval gate says which stage failed: a retrieval regression is attributed to retrieval, a generation
regression to generation (in the result and the HTML report), and champion regressions count against
their own stage."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from eval_fixtures import CASES, GATE, eval_home, run, stage, write_suite  # noqa: F401 (eval_home: a fixture)

STAGE_GATE = {**GATE, "thresholds": {**GATE["thresholds"], "rouge_score": 0.5, "semantic_similarity": 0.5}}


def _answers_with_the_reference(request):
    """A generator that answers each case with its reference answer: generation at its best."""
    text = " ".join(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in request.messages)
    return next(c["reference"] for c in CASES if c["question"] in text)


@pytest.fixture(scope="module")
def stage_suite(tmp_path_factory):
    from llmfti.evaluation.suites import load_suite

    return load_suite(write_suite(tmp_path_factory.mktemp("stage-suites"), gate=STAGE_GATE, name="staged"))


def test_a_retrieval_regression_is_attributed_to_retrieval(eval_home, stage_suite):
    from llmfti.testing.scripted_generator import ScriptedGenerator

    good = run(eval_home, stage_suite, stage(eval_home), generator_override=ScriptedGenerator(_answers_with_the_reference), store=False)
    assert good["passed"] and good["failing_stage"] is None
    assert good["stages"]["retrieval"]["passed"] and good["stages"]["retrieval"]["failing"] == []
    assert set(good["stages"]["retrieval"]["gated"]) == {"hit_at_k", "mrr", "non_llm_context_recall", "non_llm_context_precision_with_reference"}
    assert good["stages"]["generation"]["passed"] and set(good["stages"]["generation"]["gated"]) == {"rouge_score", "semantic_similarity"}
    broken = run(eval_home, stage_suite, stage(eval_home, retrieval={"k": 0}), generator_override=ScriptedGenerator(_answers_with_the_reference),
                 store=False)
    assert not broken["passed"] and broken["failing_stage"] == "retrieval"
    assert {"hit_at_k", "mrr", "non_llm_context_recall"} <= set(broken["stages"]["retrieval"]["failing"])
    assert broken["stages"]["generation"] == {**good["stages"]["generation"], "passed": True, "failing": []}
    assert set(broken["failing"]) == set(broken["stages"]["retrieval"]["failing"])  # the existing keys are unchanged


def test_a_generation_regression_is_attributed_to_generation(eval_home, stage_suite, tmp_path):
    from llmfti.evaluation.report import write_report
    from llmfti.testing.scripted_generator import ScriptedGenerator

    broken = run(eval_home, stage_suite, stage(eval_home), generator_override=ScriptedGenerator(["Sorry, I do not know."]), store=False)
    assert not broken["passed"] and broken["failing_stage"] == "generation"
    assert broken["stages"]["retrieval"]["passed"] and broken["metrics"]["hit_at_k"] == 1.0
    assert set(broken["stages"]["generation"]["failing"]) == {"rouge_score", "semantic_similarity"}

    html = write_report(broken, tmp_path / "gen.html").read_text()
    parsed = _Stages()
    parsed.feed(html)
    assert parsed.attribution == "generation" and parsed.verdicts == {"retrieval": "pass", "generation": "FAIL"}
    assert parsed.check_stage["hit_at_k"] == "retrieval" and parsed.check_stage["rouge_score"] == "generation"
    assert parsed.check_stage["faithfulness"] == "generation"  # judged metrics are generation's too
    assert {"stages", "checks", "checks-retrieval", "checks-generation", "cases"} <= parsed.ids
    # A result stored before stages existed still renders, its stages derived from its checks.
    old = {k: v for k, v in broken.items() if k not in ("stages", "failing_stage")}
    parsed_old = _Stages()
    parsed_old.feed(write_report(old, tmp_path / "old.html").read_text())
    assert parsed_old.attribution == "generation" and parsed_old.verdicts == parsed.verdicts


def test_champion_regressions_count_against_their_stage_and_retrieval_comes_first():
    from llmfti.evaluation.metrics import failing_stage, stage_verdicts

    checks = [{"metric": "hit_at_k", "status": "pass"}, {"metric": "rouge_score", "status": "pass"}, {"metric": "faithfulness", "status": "skipped"}]
    stages = stage_verdicts(checks, ["semantic_similarity"])
    assert stages["retrieval"] == {"gated": ["hit_at_k"], "passed": True, "failing": []}
    assert stages["generation"] == {"gated": ["rouge_score"], "passed": False, "failing": ["champion:semantic_similarity"]}
    assert failing_stage(stages) == "generation"
    both = stage_verdicts([{"metric": "mrr", "status": "fail"}, {"metric": "rouge_score", "status": "fail"}])
    assert failing_stage(both) == "retrieval"  # generation reads what retrieval returned: fix retrieval first
    assert failing_stage(stage_verdicts(checks)) is None


class _Stages(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.verdicts, self.check_stage, self.attribution = set(), {}, {}, None
        self._row = None
        self._cells: list = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if a.get("id") == "attribution":
            self.attribution = a.get("data-stage") or None
        if tag == "tr" and a.get("class") == "stage":
            self._row, self._cells = a["data-stage"], []
        if tag == "tr" and a.get("class") in ("check", "ungated"):
            self.check_stage[a["data-metric"]] = a["data-stage"]

    def handle_data(self, data):
        if self._row is not None:
            self._cells.append(data)

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.verdicts[self._row] = self._cells[3]
            self._row = None
