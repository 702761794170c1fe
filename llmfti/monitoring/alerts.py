"""Alert thresholds of `llmfti monitor` and the check that turns a monitoring result into alerts.

    thresholds = load_thresholds("monitor.yaml", ["max_error_rate=0.1"])   # YAML + key=value overrides
    alerts = check_alerts(result, thresholds)    # [] when all is well; the CLI exits 1 otherwise

A YAML file holds any subset of the fields below, e.g.

    alpha: 0.01
    max_auc: 0.8
    latency_p95_ms: {generate: 2000, retrieve: 50}
"""

from __future__ import annotations

from pydantic import Field

from llmfti.config.base import StrictModel, load_config


class AlertThresholds(StrictModel):
    """When `llmfti monitor` raises an alert (and exits 1)."""

    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level: query drift when the MMD permutation p-value is below it.")
    max_auc: float = Field(0.75, gt=0.5, le=1, description="Query drift when the domain classifier's cross-validated AUC exceeds it (its lower bound at 1 - alpha does).")
    max_length_change: float = Field(0.5, gt=0, description="Query-length shift: relative change of the mean length beyond this (and KS p < alpha).")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="Share of failed requests (status not ok/cancelled) per version.")
    weak_score: float = Field(0.3, description="A top-1 cosine score below this is weak context (vector retrieval; not used for hybrid).")
    max_weak_share: float = Field(0.3, ge=0, le=1, description="Share of successful requests with weak or no context, per version.")
    grounded_threshold: float = Field(0.5, ge=0, le=1, description="An answer whose content words are less than this share in its contexts is not grounded.")
    max_ungrounded_share: float = Field(0.3, ge=0, le=1, description="Share of sampled answers not grounded in their contexts.")
    latency_ratio: float = Field(1.5, gt=1, description="A stage regressed when its p95 exceeds this times the reference window's p95 ...")
    latency_min_ms: float = Field(10.0, ge=0, description="... and is at least this many ms slower.")
    latency_p95_ms: dict[str, float] = Field(default_factory=dict, description="Absolute p95 limits per stage (ms), e.g. {generate: 2000}.")
    min_requests: int = Field(20, ge=1, description="Rates of a version (or a window) with fewer requests are reported, not alerted on.")


def auc_lower_bound(classifier: dict, alpha: float) -> float:
    """One-sided (1 - alpha) lower bound of the domain classifier's AUC, from its standard error when
    the windows do not differ: with 60 queries a side that error is ~0.05, and AUCs near 0.78 were
    seen by chance; with 2,000 a side it is ~0.01 and the bound is the AUC."""
    from scipy.stats import norm

    return classifier["auc"] - float(norm.ppf(1 - alpha)) * classifier.get("se_null", 0.0)


def load_thresholds(path: str | None = None, overrides: list[str] | None = None) -> AlertThresholds:
    return load_config(AlertThresholds, path, overrides)


def _alert(name: str, message: str, value, threshold, scope: str = "all") -> dict:
    return {"name": name, "scope": scope, "value": value, "threshold": threshold, "message": message}


def check_alerts(result: dict, t: AlertThresholds) -> list[dict]:
    """Alerts of a monitoring result (`llmfti.pipelines.monitoring.monitor`)."""
    alerts = []
    for version, s in result.get("versions", {}).items():
        if version == "all" or s["requests"] < t.min_requests:
            continue
        scope = f"version {version}"
        if s["error_rate"] is not None and s["error_rate"] > t.max_error_rate:
            alerts.append(_alert("error_rate", f"{s['error_rate']:.1%} of requests failed (limit {t.max_error_rate:.1%})", s["error_rate"], t.max_error_rate, scope))
        r = s.get("retrieval", {})
        share = r.get("weak_or_none_share")
        if share is not None and r["requests"] >= t.min_requests and share > t.max_weak_share:
            alerts.append(_alert("weak_context", f"{share:.1%} of answered requests had weak or no context (limit {t.max_weak_share:.1%})",
                                 share, t.max_weak_share, scope))
    g = result.get("grounding") or {}
    if g.get("ungrounded_share") is not None and g["answers"] >= t.min_requests and g["ungrounded_share"] > t.max_ungrounded_share:
        alerts.append(_alert("ungrounded_answers", f"{g['ungrounded_share']:.1%} of sampled answers are not grounded in their contexts "
                             f"(limit {t.max_ungrounded_share:.1%})", g["ungrounded_share"], t.max_ungrounded_share))
    for reg in result.get("latency_regressions", []):
        if reg["kind"] == "absolute":
            msg = f"p95 of stage {reg['stage']} is {reg['current_ms']} ms (limit {reg['limit_ms']} ms)"
            alerts.append(_alert("latency", msg, reg["current_ms"], reg["limit_ms"], f"stage {reg['stage']}"))
        else:
            msg = f"p95 of stage {reg['stage']} went from {reg['reference_ms']} to {reg['current_ms']} ms (x{reg['ratio']}, limit x{t.latency_ratio})"
            alerts.append(_alert("latency", msg, reg["current_ms"], reg["reference_ms"], f"stage {reg['stage']}"))
    d = result.get("drift") or {}
    if d.get("computed"):
        mmd, clf, length = d["mmd"], d["classifier"], d.get("length")
        if mmd["p_value"] < t.alpha:
            alerts.append(_alert("query_drift_mmd", f"served queries differ from the baseline: MMD permutation p = {mmd['p_value']:.4f} "
                                 f"(alpha {t.alpha})", mmd["p_value"], t.alpha))
        if clf and auc_lower_bound(clf, t.alpha) > t.max_auc:
            alerts.append(_alert("query_drift_auc", f"a classifier tells served queries from the baseline with AUC {clf['auc']:.3f} "
                                 f"(lower bound {auc_lower_bound(clf, t.alpha):.3f}; limit {t.max_auc})", clf["auc"], t.max_auc))
        if length and length["p_value"] < t.alpha and abs(length["relative_change"] or 0) > t.max_length_change:
            alerts.append(_alert("query_length_shift", f"mean query length went from {length['baseline_mean']:.1f} to {length['current_mean']:.1f} words "
                                 f"(KS p = {length['p_value']:.4f})", length["relative_change"], t.max_length_change))
    return alerts
