"""Champion/challenger: is a new tuple significantly worse than the one it would replace, case by case?

    compare_paired(champion_cases, challenger_cases, ["hit_at_k", "rouge_score"], tolerance=0.02)

Both sides answered the same suite version; their per-case scores are paired by case id. For each
gated metric the mean of the per-case differences (challenger - champion) gets a paired bootstrap
confidence interval (seeded, so the verdict is reproducible). The challenger is *significantly
worse* on a metric when the whole interval lies below -tolerance: a real regression larger than the
tolerance, not noise. It passes when it is significantly worse on no metric. Ties and small noise
pass; a tolerance of 0 makes any significant loss fail.
"""

from __future__ import annotations

import math

import numpy as np


def _pairs(champion_cases: list[dict], challenger_cases: list[dict], metric: str) -> np.ndarray:
    champ = {c["id"]: c["scores"].get(metric) for c in champion_cases}
    diffs = []
    for case in challenger_cases:
        a, b = champ.get(case["id"]), case["scores"].get(metric)
        if _number(a) and _number(b):
            diffs.append(float(b) - float(a))
    return np.asarray(diffs, dtype=np.float64)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def compare_paired(champion_cases: list[dict], challenger_cases: list[dict], metrics: list[str], *, tolerance: float = 0.02,
                   confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    """Per metric: mean difference, bootstrap interval, n paired cases, `worse`; and `passed` overall."""
    rng = np.random.default_rng(seed)
    out: dict = {"method": f"paired bootstrap, {resamples} resamples, seed {seed}", "tolerance": tolerance, "confidence": confidence, "metrics": {}}
    alpha = (1.0 - confidence) / 2.0
    for metric in metrics:
        d = _pairs(champion_cases, challenger_cases, metric)
        if d.size == 0:
            out["metrics"][metric] = {"n": 0, "mean_diff": None, "lower": None, "upper": None, "worse": False, "note": "no paired cases"}
            continue
        means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
        lower, upper = (float(x) for x in np.quantile(means, [alpha, 1.0 - alpha]))
        out["metrics"][metric] = {"n": int(d.size), "mean_diff": round(float(d.mean()), 6), "lower": round(lower, 6), "upper": round(upper, 6),
                                  "worse": bool(upper < -tolerance)}
    out["worse_on"] = sorted(m for m, r in out["metrics"].items() if r["worse"])
    out["passed"] = not out["worse_on"]
    return out
