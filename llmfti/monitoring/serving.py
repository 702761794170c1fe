"""Serving statistics from inference-log rows, per deployment version: volume, status and error rate,
latency percentiles per stage, prompt/completion tokens, and retrieval quality without labels (top-1
and top-k scores, share of requests with weak or no context).

    cols = LogColumns.from_arrow(log.scan("docs-qa", since, until, columns=LogColumns.COLUMNS))
    summarize(cols, {1: {"k": 4, "hybrid": False}}, weak_score=0.3)   # {"1": {...}, "all": {...}}
    latency_regressions(cols, reference_cols, ratio=1.5, min_ms=10)

Columnar (numpy arrays, JSON columns parsed in one pass each) because a window can hold a million rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from llmfti.monitoring.timing import STAGES

PERCENTILES = (50, 90, 95, 99)
OK_STATUSES = ("ok", "cancelled")  # a client disconnect is not a failure of the deployment


def _parse_json_column(values: list) -> list:
    """json.loads over a column in ONE call (a JSON array of the values): about twice as fast as a call
    per row at a million rows. Nulls and empty strings read as None."""
    text = "[" + ",".join(v if v else "null" for v in values) + "]"
    return json.loads(text)


@dataclass
class LogColumns:
    """Inference-log rows as arrays (one entry per row)."""

    COLUMNS = ["request_id", "time", "deployment_version", "status", "timings_ms", "retrieved", "prompt_tokens", "completion_tokens"]

    request_id: np.ndarray
    time: np.ndarray  # datetime64[us], UTC
    version: np.ndarray  # int
    status: np.ndarray  # object (str)
    timings: dict[str, np.ndarray]  # stage -> ms (NaN where the stage did not run)
    prompt_tokens: np.ndarray  # float (NaN when unknown)
    completion_tokens: np.ndarray
    top1: np.ndarray  # best retrieval score (NaN: no context)
    topk_mean: np.ndarray  # mean score of the retrieved contexts (NaN: none)
    n_retrieved: np.ndarray  # int
    row_id: np.ndarray | None = None  # `_rowid`, when scanned with row ids (to read a sample's other columns)
    feature_group: np.ndarray | None = None  # object (str), when the `feature_group` column was read
    commit: np.ndarray | None = None  # int (-1: none), when the `commit` column was read

    def __len__(self) -> int:
        return len(self.status)

    @classmethod
    def from_arrow(cls, table) -> "LogColumns":
        n = table.num_rows
        col = lambda name: table.column(name).to_pylist()  # noqa: E731
        timings_rows = _parse_json_column(col("timings_ms"))
        stages = list(dict.fromkeys([*STAGES, "total", *(k for t in timings_rows if t for k in t)]))
        timings = {s: np.array([(t or {}).get(s, np.nan) for t in timings_rows], dtype=float) for s in stages}
        timings = {s: v for s, v in timings.items() if not np.all(np.isnan(v))} if n else {}
        retrieved = _parse_json_column(col("retrieved"))
        scores = [[float(c["score"]) for c in (r or []) if c.get("score") is not None] for r in retrieved]
        top1 = np.array([max(s) if s else np.nan for s in scores], dtype=float)
        topk = np.array([float(np.mean(s)) if s else np.nan for s in scores], dtype=float)
        times = table.column("time").cast("timestamp[us]").to_numpy() if n else np.array([], dtype="datetime64[us]")

        def numeric(name):
            return np.array([np.nan if v is None else float(v) for v in col(name)], dtype=float)

        return cls(
            request_id=np.array(col("request_id"), dtype=object), time=times,
            version=np.array([-1 if v is None else int(v) for v in col("deployment_version")], dtype=int),
            status=np.array([s or "unknown" for s in col("status")], dtype=object), timings=timings,
            prompt_tokens=numeric("prompt_tokens"), completion_tokens=numeric("completion_tokens"),
            top1=top1, topk_mean=topk, n_retrieved=np.array([len(s) for s in scores], dtype=int),
            row_id=np.array(col("_rowid"), dtype=np.uint64) if "_rowid" in table.column_names else None,
            feature_group=np.array(col("feature_group"), dtype=object) if "feature_group" in table.column_names else None,
            commit=np.array([-1 if c is None else c for c in col("commit")], dtype=np.int64) if "commit" in table.column_names else None,
        )

    @property
    def errors(self) -> np.ndarray:
        return ~np.isin(self.status, OK_STATUSES)


def percentiles(values) -> dict | None:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return None
    out = {f"p{q}": round(float(np.percentile(v, q)), 3) for q in PERCENTILES}
    out.update(mean=round(float(v.mean()), 3), n=int(len(v)))
    return out


def _weak(cols: LogColumns, mask: np.ndarray, weak_score: float, hybrid: bool) -> dict:
    """Retrieval quality of the successful requests in `mask` (failed ones may not have reached retrieval)."""
    ok = mask & (cols.status == "ok")
    n = int(ok.sum())
    none = ok & (cols.n_retrieved == 0)
    out = {"requests": n, "no_context_share": float(none.sum() / n) if n else None,
           "top1": percentiles(cols.top1[ok]), "topk_mean": percentiles(cols.topk_mean[ok])}
    if hybrid:
        # Hybrid scores are reciprocal-rank-fusion relevances, not cosine similarities: no fixed
        # threshold means "weak" for them, so only "no context" counts.
        out.update(weak_share=None, weak_or_none_share=out["no_context_share"], score_kind="rrf")
    else:
        weak = ok & (cols.n_retrieved > 0) & (cols.top1 < weak_score)
        out.update(weak_share=float(weak.sum() / n) if n else None,
                   weak_or_none_share=float((weak | none).sum() / n) if n else None, score_kind="cosine")
    return out


def summarize_mask(cols: LogColumns, mask: np.ndarray, *, weak_score: float, k: int = 1, hybrid: bool = False) -> dict:
    """Volume, status, latency, tokens and retrieval quality of the rows in `mask`."""
    n = int(mask.sum())
    statuses, counts = np.unique(cols.status[mask], return_counts=True) if n else ([], [])
    by_status = {str(s): int(c) for s, c in sorted(zip(statuses, counts), key=lambda sc: -sc[1])}
    errors = int((cols.errors & mask).sum())
    out = {
        "requests": n, "by_status": by_status, "errors": errors, "error_rate": errors / n if n else None,
        "latency_ms": {s: p for s, v in cols.timings.items() if (p := percentiles(v[mask])) is not None},
        "tokens": {"prompt": percentiles(cols.prompt_tokens[mask]), "completion": percentiles(cols.completion_tokens[mask]),
                   "prompt_total": int(np.nansum(cols.prompt_tokens[mask])), "completion_total": int(np.nansum(cols.completion_tokens[mask]))},
    }
    out["retrieval"] = _weak(cols, mask, weak_score, hybrid) if k > 0 else {"requests": 0, "configured": False}
    return out


def summarize(cols: LogColumns, versions: dict[int, dict], *, weak_score: float) -> dict[str, dict]:
    """Per deployment version ("1", "2", ...) and "all". `versions`: version -> {"k", "hybrid"} from
    each version's config (a version not listed is taken as retrieving, cosine scores)."""
    out = {}
    for v in sorted(set(cols.version.tolist())):
        info = versions.get(v, {})
        out[str(v)] = summarize_mask(cols, cols.version == v, weak_score=weak_score, k=info.get("k", 1), hybrid=info.get("hybrid", False))
    every = np.ones(len(cols), dtype=bool)
    hybrid_all = bool(versions) and all(i.get("hybrid", False) for i in versions.values())
    out["all"] = summarize_mask(cols, every, weak_score=weak_score, k=max([i.get("k", 1) for i in versions.values()] or [1]), hybrid=hybrid_all)
    return out


def latency_regressions(current: LogColumns, reference: LogColumns | None, *, ratio: float, min_ms: float,
                        absolute_p95_ms: dict[str, float] | None = None, quantile: int = 95) -> list[dict]:
    """Stages whose p95 latency got worse: more than `ratio` times the reference window's p95 AND
    more than `min_ms` slower (so a 0.1 -> 0.3 ms stage is not an incident), or above an absolute
    per-stage limit. Both windows need a few rows per stage (>= 5) to compare."""
    found = []
    for stage, values in current.timings.items():
        v = values[~np.isnan(values)]
        if len(v) < 5:
            continue
        cur = float(np.percentile(v, quantile))
        limit = (absolute_p95_ms or {}).get(stage)
        if limit is not None and cur > limit:
            found.append({"stage": stage, "current_ms": round(cur, 3), "limit_ms": limit, "kind": "absolute"})
        if reference is None or stage not in reference.timings:
            continue
        r = reference.timings[stage]
        r = r[~np.isnan(r)]
        if len(r) < 5:
            continue
        ref = float(np.percentile(r, quantile))
        if cur > ratio * ref and cur - ref > min_ms:
            found.append({"stage": stage, "current_ms": round(cur, 3), "reference_ms": round(ref, 3),
                          "ratio": round(cur / ref, 2) if ref > 0 else None, "kind": "regression"})
    return found
