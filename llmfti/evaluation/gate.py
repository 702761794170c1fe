"""Pass/fail per metric. Deterministic metrics are hard thresholds on the mean over cases; judged
metrics pass only when the lower bound of the confidence interval over N judge runs clears the
threshold, fail when the upper bound is below it, and are `inconclusive` (not passing) in between,
so a noisy judge can neither pass nor fail a model by luck.

    result = apply_gate(gate, means={"hit_at_k": 0.9, ...}, judged_runs={"faithfulness": [.6, .7, .65]})
    result["passed"], result["checks"]
"""

from __future__ import annotations

import math

from llmfti.evaluation.judge import confidence_interval
from llmfti.evaluation.suites import GateConfig


def apply_gate(gate: GateConfig, means: dict[str, float | None], judged_runs: dict[str, list] | None = None, *, confidence: float | None = None) -> dict:
    checks = []
    for metric, threshold in gate.thresholds.items():
        value = means.get(metric)
        if value is None:  # thresholded but not computable (e.g. no case has reference contexts)
            checks.append({"metric": metric, "kind": "deterministic", "threshold": threshold, "value": None, "status": "missing"})
            continue
        checks.append({"metric": metric, "kind": "deterministic", "threshold": threshold, "value": round(value, 6),
                       "status": "pass" if value >= threshold else "fail"})
    conf = confidence or gate.judge.confidence
    for metric, threshold in gate.judge.thresholds.items():
        if judged_runs is None:
            checks.append({"metric": metric, "kind": "judged", "threshold": threshold, "value": None, "status": "skipped"})
            continue
        ci = confidence_interval(judged_runs.get(metric) or [], conf)
        if ci["mean"] is None:
            status = "missing"
        elif ci["lower"] >= threshold:
            status = "pass"
        elif ci["upper"] < threshold:
            status = "fail"
        else:
            status = "inconclusive"  # the interval straddles the threshold: more runs or a better judge
        checks.append({"metric": metric, "kind": "judged", "threshold": threshold, "value": ci["mean"], "lower": _finite(ci["lower"]),
                       "upper": _finite(ci["upper"]), "runs": ci["n"], "confidence": conf, "status": status})
    failing = [c["metric"] for c in checks if c["status"] not in ("pass", "skipped")]
    return {"passed": not failing, "failing": failing, "checks": checks}


def _finite(x):
    """JSON has no infinities: an unbounded side of an interval is stored as null."""
    return None if x is None or math.isinf(x) else x
