"""The monitoring pipeline: inference log + feature store (+ a baseline) -> a monitoring result and a
self-contained HTML report (CLI: `llmfti monitor`).

    from llmfti.pipelines.monitoring import monitor
    run = monitor(home, "docs-qa", since="24h", baseline="eval:python-reference")
    run.result["alerts"]              # [] when no threshold is crossed (the CLI exits 1 otherwise)
    run.write_report("build/monitor.html")

What it reads, and what it bounds so that the cost stays flat as the log grows:
- every row of the window, but only light columns (status, timings, retrieval scores, tokens) pushed
  down as a LanceDB filter: volume, errors, latency, tokens and retrieval scores are exact;
- a seeded sample of at most `sample` rows (default 2,000) for everything that needs the query text,
  the answer or the served query vector: grounding, drift, topics;
- the baseline's vectors, sampled the same way: `eval:SUITE` and `td:NAME:N` questions embedded with
  the deployment's feature-group embedder (as the online pipeline embeds them), `window:T1..T2` the
  vectors logged then.
The latency and score reference is the `window:` baseline when one is given (arguments parsed by
`llmfti.pipelines.monitor_args`), else the period of the
same length just before `since`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from llmfti.errors import ConfigError
from llmfti.logs import get_logger
from llmfti.monitoring.alerts import AlertThresholds, check_alerts
from llmfti.pipelines.monitor_args import parse_baseline, parse_commits, parse_when
from llmfti.sources.timeparse import utcnow

logger = get_logger(__name__)

SAMPLE = 2000  # vectors (and rows read in full) per window
GROUNDING_SAMPLE = 500  # answers whose contexts are read back from the feature group
MIN_VECTORS = 10  # per window, for a drift test
JUDGE_NOTE = ("not computed by monitor: the Ragas judge metrics cost one judge call per sampled answer (and several runs for an "
              "interval), more than the whole report; the lexical grounding proxy needs no judge. `llmfti eval` runs them on a suite "
              "when LLMFTI_JUDGE_BASE_URL is set.")


@dataclass
class MonitorRun:
    """The result (JSON-able numbers) and the arrays its plots are drawn from."""

    result: dict
    plot_data: dict = field(default_factory=dict)

    def images(self) -> dict[str, str]:
        from llmfti.monitoring import plots

        d, r = self.plot_data, self.result
        images = {"volume": plots.volume_plot(d["times"], d["errors"])}
        latency = r["versions"].get("all", {}).get("latency_ms") or {}
        if latency:
            images["latency"] = plots.latency_plot(latency, d.get("reference_latency"))
        images["retrieval"] = plots.retrieval_plot(d["top1"], d.get("reference_top1"), d.get("weak_score"), d.get("grounding", []))
        if r["drift"].get("computed"):
            images["drift"] = plots.drift_plot(d["pca_baseline"], d["pca_current"], d["len_baseline"], d["len_current"])
        if r.get("topics"):
            images["topics"] = plots.topics_plot(r["topics"])
        return images

    def write_report(self, path: str | Path) -> Path:
        from llmfti.monitoring.report import write_report

        return write_report(self.result, self.images(), path)


def _version_infos(deployments, name: str, versions) -> dict[int, dict]:
    from llmfti.errors import NotFoundError

    out = {}
    for v in versions:
        try:
            cfg = deployments.get(name, int(v)).config
        except NotFoundError:  # a log row of a version recorded elsewhere: take the defaults
            continue
        retrieval = cfg.get("retrieval") or {}
        out[int(v)] = {"k": int(retrieval.get("k", 4)) if cfg.get("feature_group") else 0, "hybrid": bool(retrieval.get("hybrid", False)),
                       "feature_group": cfg.get("feature_group")}
    return out


def _vectors(column) -> list:
    return [None if v is None else np.asarray(v, dtype=np.float32) for v in column]


def _questions(requests: list) -> list[str]:
    import json

    out = []
    for r in requests:
        try:
            out.append(str((json.loads(r) if isinstance(r, str) else (r or {})).get("question", "")))
        except (ValueError, AttributeError):
            out.append("")
    return out


def _sample_indices(n: int, limit: int, rng) -> np.ndarray:
    return np.sort(rng.choice(n, size=limit, replace=False)) if n > limit else np.arange(n)


class _Monitor:
    """One run: holds the stores and the window; each method computes one part of the result."""

    def __init__(self, home, deployment: str, thresholds: AlertThresholds, sample: int, permutations: int, seed: int, suites_root):
        from llmfti.registry.deployments import DeploymentStore
        from llmfti.store import FeatureStore

        self.store = FeatureStore(home)
        self.deployments = DeploymentStore(self.store.home)
        self.name = deployment
        self.active = self.deployments.active(deployment)  # NotFoundError (exit 3) for an unknown deployment
        self.config = self.active.config
        self.t = thresholds
        self.sample, self.permutations, self.seed, self.suites_root = sample, permutations, seed, suites_root
        self.rng = np.random.default_rng(seed)
        self.notes: list[str] = []
        self.window_cols = None  # the `window:` baseline's rows, once read (they are the latency reference too)
        self._fg = None

    @property
    def fg(self):
        if self._fg is None and self.config.get("feature_group"):
            self._fg = self.store.feature_group(self.config["feature_group"])
        return self._fg

    # --- reading the log ------------------------------------------------------------------------------
    def columns(self, log, since, until):
        from llmfti.monitoring.serving import LogColumns

        return LogColumns.from_arrow(log.scan(self.name, since, until, LogColumns.COLUMNS + ["feature_group", "commit"], row_ids=True))

    def details(self, log, cols, idx: np.ndarray) -> dict:
        """Question, answer, served vector and retrieved chunk ids of the rows at `idx` (a sample)."""
        import json

        if not len(idx):
            return {"questions": [], "outputs": [], "vectors": [], "retrieved": []}
        table = log.take(cols.row_id[idx].tolist(), ["request_id", "request", "output", "retrieved", "query_vector"])
        found = {rid: row for rid, row in zip(table.column("request_id").to_pylist(), table.drop(["request_id"]).to_pylist())}
        # A row id can go stale if the table is compacted between the scan and here: that row reads as empty.
        rows = [found.get(rid) or {} for rid in cols.request_id[idx]]
        return {"questions": _questions([r.get("request") for r in rows]), "outputs": [r.get("output") for r in rows],
                "vectors": _vectors([r.get("query_vector") for r in rows]),
                "retrieved": [json.loads(r["retrieved"]) if r.get("retrieved") else [] for r in rows]}

    # --- retrieval quality ------------------------------------------------------------------------------
    def grounding(self, cols, idx: np.ndarray, det: dict) -> tuple[dict, list[float]]:
        """Lexical grounding of sampled successful answers in the chunks they were served (read back
        from the feature group at the commit each request read)."""
        from llmfti.monitoring.grounding import grounding_score, grounding_summary

        picked = [j for j, i in enumerate(idx) if cols.status[i] == "ok" and det["retrieved"][j] and det["outputs"][j]]
        picked = picked[:GROUNDING_SAMPLE]
        texts = self._chunk_texts([(cols.feature_group[idx[j]], int(cols.commit[idx[j]]), [c["chunk_id"] for c in det["retrieved"][j]]) for j in picked])
        scores = []
        for j in picked:
            key = (cols.feature_group[idx[j]], int(cols.commit[idx[j]]))
            if key not in texts:
                continue
            contexts = [texts[key][c["chunk_id"]] for c in det["retrieved"][j] if c["chunk_id"] in texts[key]]
            scores.append(grounding_score(det["outputs"][j], contexts))
        return grounding_summary(scores, threshold=self.t.grounded_threshold), [s for s in scores if s is not None]

    def _chunk_texts(self, wanted: list) -> dict:
        """(feature group, commit) -> {chunk_id: text} for `wanted`: (feature group, commit, chunk ids) per answer."""
        from llmfti.errors import LlmftiError
        from llmfti.tables import sql_quote

        ids: dict[tuple, set] = {}
        for fg_ref, commit, chunk_ids in wanted:
            ids.setdefault((fg_ref, commit), set()).update(chunk_ids)
        out = {}
        for (fg_ref, commit), chunk_ids in ids.items():
            if not fg_ref or commit < 0:
                continue
            try:
                fg = self.store.feature_group(fg_ref)
                texts = {}
                chunk_ids = sorted(chunk_ids)
                for start in range(0, len(chunk_ids), 500):
                    where = "chunk_id IN (" + ", ".join(sql_quote(c) for c in chunk_ids[start:start + 500]) + ")"
                    for row in fg.read(commit, columns=["chunk_id", "text"], where=where).to_pylist():
                        texts[row["chunk_id"]] = row["text"]
                out[(fg_ref, commit)] = texts
            except LlmftiError as exc:  # a commit removed by retention, a dropped group: skip its answers
                self.notes.append(f"grounding skipped answers served from {fg_ref} commit {commit}: {exc}")
        return out

    # --- drift ----------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return int(self.fg.info["dimension"])

    def _served_here(self, cols, idx, det) -> list[int]:
        """Positions in a sample whose query vector is comparable with the baseline: logged, from the
        active version's feature group and of its embedder's dimension."""
        fg_ref = self.config["feature_group"]
        return [j for j, v in enumerate(det["vectors"]) if v is not None and cols.feature_group[idx[j]] == fg_ref and len(v) == self.dimension]

    def baseline_sample(self, baseline, log) -> tuple[np.ndarray, list[str]]:
        """(vectors, questions) of the baseline, at most `sample` of them."""
        if baseline.kind == "window":
            cols = self.window_cols if self.window_cols is not None else self.columns(log, baseline.since, baseline.until)
            idx = _sample_indices(len(cols), self.sample, self.rng)
            det = self.details(log, cols, idx)
            keep = self._served_here(cols, idx, det)
            if not keep:
                return np.zeros((0, self.dimension), dtype=np.float32), []
            return np.stack([det["vectors"][j] for j in keep]), [det["questions"][j] for j in keep]
        if baseline.kind == "eval":
            from llmfti.evaluation.suites import load_suite

            questions = [c.question for c in load_suite(baseline.ref, self.suites_root).cases]
        else:
            examples = self.store.training_dataset(baseline.ref).examples(columns=["question"])
            questions = [e["question"] for e in examples if e.get("question")]
        questions = [questions[i] for i in _sample_indices(len(questions), self.sample, self.rng)]
        return self._embed(questions), questions

    def _embed(self, questions: list[str]) -> np.ndarray:
        """The questions embedded as the online pipeline embeds a query: with the feature group's
        embedder, on the normalized question when the deployment computes that feature."""
        from llmfti.models.embedders import load_embedder
        from llmfti.store.retrieval import query_text
        from llmfti.transforms.on_demand import get_on_demand

        embedder = load_embedder(self.fg.config.embedder, self.store.home)
        if "normalized_question" in (self.config.get("on_demand") or []):
            norm = get_on_demand("normalized_question")
            questions = [query_text(q, {"normalized_question": norm({"question": q}, utcnow())}) for q in questions]
        return embedder.embed(questions) if questions else np.zeros((0, embedder.dimension), dtype=np.float32)

    def drift(self, baseline, log, cols, idx, det) -> tuple[dict, dict]:
        from llmfti.monitoring.drift import domain_classifier_auc, length_shift, mmd_test, pooled_pca, query_lengths

        if baseline is None:
            return {"computed": False, "reason": "no --baseline given (eval:SUITE, td:NAME:N or window:T1..T2)"}, {}
        if self.fg is None:
            return {"computed": False, "reason": "the deployment has no feature group: its queries are not embedded"}, {}
        base, base_q = self.baseline_sample(baseline, log)
        fg_ref = self.config["feature_group"]
        keep = self._served_here(cols, idx, det)
        missing = len(idx) - len(keep)
        out = {"baseline": baseline.label, "n_baseline": int(len(base)), "n_current": len(keep), "sample_limit": self.sample}
        if missing:
            out["excluded"] = (f"{missing} sampled request(s) left out: no logged query vector (failed before embedding, or logged "
                               f"before vectors were), or served from another feature group than {fg_ref}.")
        if len(base) < MIN_VECTORS or len(keep) < MIN_VECTORS:
            return {**out, "computed": False, "reason": f"too few vectors for a drift test (baseline {len(base)}, window {len(keep)}; "
                                                        f"at least {MIN_VECTORS} each)"}, {}
        cur = np.stack([det["vectors"][j] for j in keep])
        cur_q = [det["questions"][j] for j in keep]
        out["mmd"] = mmd_test(base, cur, permutations=self.permutations, seed=self.seed)
        out["classifier"] = domain_classifier_auc(base, cur, seed=self.seed)
        lb, lc = query_lengths(base_q), query_lengths(cur_q)
        out["length"] = length_shift(lb, lc)
        pb, pc = pooled_pca(base, cur, seed=self.seed)
        return {**out, "computed": True}, {"pca_baseline": pb, "pca_current": pc, "len_baseline": lb, "len_current": lc}

    # --- topics and the corpus ----------------------------------------------------------------------------
    def topics(self, cols, idx, det, versions: dict) -> tuple[list[dict], str | None]:
        from llmfti.monitoring.topics import worst_topics

        dims = [len(v) for v in det["vectors"] if v is not None]
        if not dims:
            return [], "no logged query vectors in the window"
        dim = max(set(dims), key=dims.count)  # one embedding space (a window can span feature groups)
        keep = [j for j, v in enumerate(det["vectors"]) if v is not None and len(v) == dim]
        rows = idx[keep]
        hybrid = np.array([versions.get(int(v), {}).get("hybrid", False) for v in cols.version[rows]], dtype=bool)
        ok = cols.status[rows] == "ok"
        weak = ok & ((cols.n_retrieved[rows] == 0) | (~hybrid & (cols.top1[rows] < self.t.weak_score)))
        error = cols.errors[rows]
        topics = worst_topics(np.stack([det["vectors"][j] for j in keep]), [det["questions"][j] for j in keep],
                              bad=weak | error, error=error, weak=weak, seed=self.seed)
        return topics, None if topics else "too few queries with vectors to cluster"

    def corpus_change(self, cols, commits: tuple[int, int] | None) -> dict:
        from llmfti.monitoring.corpus import document_changes, embedding_shift

        if self.fg is None:
            return {"computed": False, "reason": "the deployment has no feature group"}
        if commits is None:
            served = cols.commit[(cols.feature_group == self.config["feature_group"]) & (cols.commit >= 0)]
            if not len(served):
                return {"computed": False, "reason": "no request in the window read the feature group (give --commits C1..C2)"}
            commits = (int(served.min()), self.fg.resolve_commit(None))
        a, b = (self.fg.resolve_commit(c) for c in commits)
        before, after = self._corpus_at(a), self._corpus_at(b)
        changed = 1.0 - len(set(after["chunk_ids"]) & set(before["chunk_ids"])) / len(after["chunk_ids"]) if after["chunk_ids"] else None
        return {"computed": True, "feature_group": self.fg.key, "from_commit": a, "to_commit": b,
                "documents": document_changes(before["docs"], after["docs"]),
                "embeddings": embedding_shift(before["vectors"], after["vectors"], chunks_changed_share=changed, seed=self.seed)}

    def _corpus_at(self, commit: int) -> dict:
        tbl = self.fg.as_of(commit)
        meta = tbl.search().select(["chunk_id", "doc_id", "doc_hash"]).with_row_id(True).limit(None).to_arrow()
        docs = dict(zip(meta.column("doc_id").to_pylist(), meta.column("doc_hash").to_pylist()))
        ids = meta.column("_rowid").to_numpy()
        picked = ids[_sample_indices(len(ids), self.sample, self.rng)]
        vectors = tbl.take_row_ids(picked.tolist()).select(["vector"]).to_arrow().column("vector").to_pylist() if len(picked) else []
        return {"docs": docs, "chunk_ids": meta.column("chunk_id").to_pylist(), "vectors": np.asarray(vectors, dtype=np.float32)}


def monitor(home, deployment: str, *, since=None, until=None, baseline: str | None = None, thresholds: AlertThresholds | None = None,
            commits: str | None = None, sample: int = SAMPLE, permutations: int = 200, seed: int = 0, suites_root=None,
            now: datetime | None = None) -> MonitorRun:
    """Monitor deployment `deployment` over [since, until) (ISO-8601 or '24h'-style durations ago;
    default: the whole log up to now) against `baseline`; alerts use `thresholds`."""
    from llmfti.monitoring.serving import latency_regressions, summarize
    from llmfti.store.inference_log import InferenceLog

    t0 = time.perf_counter()
    if sample < MIN_VECTORS:
        raise ConfigError(f"sample must be at least {MIN_VECTORS}, got {sample}")
    now = now or utcnow()
    since_t, until_t = parse_when(since, now, "--since"), parse_when(until, now, "--until") or now
    if since_t is not None and since_t >= until_t:
        raise ConfigError(f"the window is empty: --since {since_t.isoformat()} is not before --until {until_t.isoformat()}")
    base = parse_baseline(baseline, now)
    commit_pair = parse_commits(commits)
    t = thresholds or AlertThresholds()
    m = _Monitor(home, deployment, t, sample, permutations, seed, suites_root)
    log = InferenceLog(m.store)
    try:
        log.flush()  # rows still in local buffers (a server that just stopped) count too
        cols = m.columns(log, since_t, until_t)
        versions = _version_infos(m.deployments, deployment, set(cols.version.tolist()) | {m.active.version})
        reference, ref_label = None, None
        if base is not None and base.kind == "window":
            reference, ref_label = m.columns(log, base.since, base.until), f"the baseline window {base.ref}"
            m.window_cols = reference
        elif since_t is not None:
            start = since_t - (until_t - since_t)
            reference, ref_label = m.columns(log, start, since_t), f"the previous period {start.isoformat()} .. {since_t.isoformat()}"
        if reference is not None and not len(reference):
            reference = None
        idx = _sample_indices(len(cols), sample, m.rng)
        det = m.details(log, cols, idx)
        grounding, grounding_scores = m.grounding(cols, idx, det)
        drift, drift_plot = m.drift(base, log, cols, idx, det)
    finally:
        log.close()
    topics, topics_note = m.topics(cols, idx, det, versions)
    summary = summarize(cols, versions, weak_score=t.weak_score)
    result = {
        "deployment": deployment, "active_version": m.active.version, "model": m.active.model, "feature_group": m.config.get("feature_group"),
        "window": {"since": since_t.isoformat() if since_t else None, "until": until_t.isoformat()},
        "generated_at": utcnow().isoformat(), "requests": len(cols),
        "sample": {"limit": sample, "rows": int(len(idx)), "of": len(cols),
                   "note": f"grounding, drift and topics use a seeded sample of at most {sample} requests per window "
                           f"(grounding: at most {GROUNDING_SAMPLE} answers); volume, errors, latency, tokens and scores use every row"},
        "versions": summary,
        "reference": {"label": ref_label, "requests": len(reference)} if reference is not None else None,
        "latency_regressions": latency_regressions(cols, reference, ratio=t.latency_ratio, min_ms=t.latency_min_ms, absolute_p95_ms=t.latency_p95_ms),
        "grounding": grounding, "judge": {"computed": False, "reason": JUDGE_NOTE},
        "drift": drift, "topics": topics, "topics_note": topics_note,
        "feature_group_change": m.corpus_change(cols, commit_pair),
        "thresholds": t.model_dump(), "notes": m.notes,
    }
    result["notes"].insert(0, result["sample"]["note"] + ".")
    if not len(cols):
        result["notes"].append("no request of this deployment was logged in the window")
    result["alerts"] = check_alerts(result, t)
    result["duration_s"] = round(time.perf_counter() - t0, 3)
    logger.info("monitored %s: %d requests in the window, %d alert(s), %.1f s", deployment, len(cols), len(result["alerts"]), result["duration_s"])
    plot_data = {
        "times": cols.time, "errors": cols.errors, "top1": cols.top1[cols.status == "ok"], "weak_score": t.weak_score,
        "reference_top1": reference.top1[reference.status == "ok"] if reference is not None else None,
        "reference_latency": summarize(reference, versions, weak_score=t.weak_score)["all"]["latency_ms"] if reference is not None else None,
        "grounding": grounding_scores, **drift_plot,
    }
    return MonitorRun(result, plot_data)
