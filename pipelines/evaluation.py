"""The evaluation pipeline: a deployment version + an eval suite -> a stored eval result (CLI:
`llmfti eval`). It runs the deployment's own inference pipeline, in-process, on every case; scores
(`llmfti.evaluation`: metrics, judge, gate); stores the result in the registry against the exact tuple.

    from llmfti.evaluation import load_suite
    from llmfti.pipelines.evaluation import run_eval
    result = run_eval(home, load_suite("python-reference"), DeploymentStore(home).staged("python-docs"))
    result["passed"], result["metrics"], result["cases"][0]["scores"]

All cases read the same feature-group commit (the latest one when the run starts, for a `latest`
policy), so the result names one tuple. Eval requests are not written to the inference log: they
are not user traffic.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from llmfti.evaluation.behaviour import answer_behaviour
from llmfti.evaluation.gate import apply_gate
from llmfti.evaluation.judge import RagasJudge, resolve_judge, run_judge
from llmfti.evaluation.metrics import DeterministicScorer, failing_stage, stage_verdicts
from llmfti.evaluation.suites import DETERMINISTIC_METRICS, JUDGED_METRICS, Suite


def _embedder_for(runtime, home):
    if runtime.embedder is not None:
        return runtime.embedder
    # A chat-only deployment has no feature group: semantic similarity uses the embedded default.
    from llmfti.config.features import EmbedderConfig
    from llmfti.models.embedders import load_embedder

    embedder = load_embedder(EmbedderConfig(model="default"), home)
    embedder.warm_up()
    return embedder


def run_eval(home, suite: Suite, record, *, cache=None, generator_override=None, judge=None, progress=None, store: bool = True,
             compare: bool = True) -> dict:
    """Evaluate deployment version `record` (from DeploymentStore.get/active/staged) on `suite`.
    `judge`: a judge object (see judge.RagasJudge) or None to use the configured one if any.
    `store`: record the result in the model registry (the promotion gate reads it there).
    `compare`: when another version of the deployment is active, compare with it case by case
    (champion/challenger); the champion is evaluated on the same suite version first if it never was."""
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.home import ProjectHome
    from llmfti.registry.deployments import tuple_key

    home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
    started = time.perf_counter()
    runtime = build_runtime(home, record, cache or RuntimeCache(), generator_override)
    # Pinned for the whole run. Under `commit: latest` the newest commit is evaluated, evaluated or not:
    # that is how a new commit qualifies to be served.
    commit = runtime.latest_commit() if runtime.commits is not None and runtime.commits.pinned is None else runtime.commit_for_request()
    scorer = DeterministicScorer(_embedder_for(runtime, home), suite.gate.context_match_threshold)
    cases, outputs = [], []
    for i, (case, out, gen_ms) in enumerate(_answers(runtime, suite.cases, commit, invoke)):
        contexts = [c["text"] for c in out["citations"]]
        doc_ids = [c.get("doc_id") or c["source"] for c in out["citations"]]
        scores = scorer.score(case, answer=out["answer"], contexts=contexts, cited_doc_ids=doc_ids)
        cases.append({"id": case.id, "question": case.question, "reference": case.reference, "answer": out["answer"],
                      "source_ids": case.source_ids, "cited_doc_ids": doc_ids, "scores": scores, "latency_ms": round(gen_ms, 1)})
        outputs.append((case, out["answer"], contexts))
        if progress:
            progress(i + 1, len(suite.cases), case.id)
    means = {m: _mean([c["scores"].get(m) for c in cases]) for m in DETERMINISTIC_METRICS}

    judge_settings = resolve_judge(suite.gate.judge)
    judged_runs = None
    judge_name = None
    if judge is None and judge_settings is not None:
        judge = RagasJudge(judge_settings, scorer.embeddings)
    if judge is not None:
        runs = judge_settings.runs if judge_settings else suite.gate.judge.runs
        judged_runs, per_case = run_judge(judge, outputs, runs)
        judge_name = getattr(judge, "name", type(judge).__name__)
        for c, judged in zip(cases, per_case):
            c["judged"] = judged
            c["scores"].update({m: _mean(v) for m, v in judged.items()})
        means.update({m: _mean(judged_runs[m]) for m in JUDGED_METRICS})

    gate = apply_gate(suite.gate, means, judged_runs)
    config = runtime.config
    this_key = tuple_key(config, commit)
    comparison = _compare_with_champion(home, suite, record, this_key, cases, cache, generator_override, judge, progress, store) if compare else None
    if comparison is not None and not comparison["passed"]:
        gate["passed"] = False
        gate["failing"] = gate["failing"] + [f"champion:{m}" for m in comparison["worse_on"]]
    versions = {
        "deployment": config.name, "deployment_version": runtime.version, "model": config.model, "feature_group": config.feature_group,
        "commit": None if commit is None else str(commit), "prompt_fingerprint": runtime.encoder.fingerprint,
        "tuple_key": this_key, "suite": suite.name, "suite_version": suite.version,
    }
    result = {
        **versions, "passed": gate["passed"], "failing": gate["failing"], "metrics": {k: v for k, v in means.items() if v is not None},
        "checks": gate["checks"], "judge": judge_name, "judge_runs": judged_runs, "n_cases": len(cases),
        "duration_s": round(time.perf_counter() - started, 1), "at": datetime.now(timezone.utc).isoformat(),
        "cases": cases,
        "worst_cases": worst_cases(cases, suite.gate.worst_cases),
        "behaviour": answer_behaviour([c["answer"] for c in cases]),
        "comparison": comparison,
    }
    # Which stage failed, so a regression is attributed to the right pipeline (retrieval first).
    result["stages"] = stage_verdicts(gate["checks"], comparison["worse_on"] if comparison else [])
    result["failing_stage"] = failing_stage(result["stages"])
    if store:
        result["artifact"] = _write_artifact(home, result)
        from llmfti.registry import ModelRegistry
        from llmfti.registry.evals import EvalRecord

        # The registry row holds the summary; per-case detail lives in the artifact it points to.
        summary = {k: v for k, v in result.items() if k in EvalRecord.model_fields}
        ModelRegistry(home).record_eval(config.model, EvalRecord.model_validate(summary))
    return result


def _compare_with_champion(home, suite: Suite, record, this_key: str, cases, cache, generator_override, judge, progress, store) -> dict | None:
    """The paired comparison with the active version of the same deployment, or None when there is
    none (a first deployment) or it is this very tuple."""
    import json

    from llmfti.errors import NotFoundError
    from llmfti.evaluation.compare import compare_paired
    from llmfti.registry.deployments import DeploymentStore, find_passing_eval

    try:
        champion = DeploymentStore(home).active(record["name"])
    except NotFoundError:
        return None
    champ_key = champion["checks"].get("tuple_key")
    if champion["version"] == record["version"] or champ_key == this_key:
        return None
    found, _ = find_passing_eval(home, champ_key, champion["model"], suite.name, suite.version) if champ_key else (None, [])
    if found is not None and found.artifact and (home.root / found.artifact).is_file():
        champ_cases = json.loads((home.root / found.artifact).read_text())["cases"]
        champ_eval = {"tuple_key": champ_key, "eval_at": found.at, "evaluated_now": False}
    else:  # the champion never ran this suite version: run it now, so the comparison is like with like
        res = run_eval(home, suite, champion, cache=cache, generator_override=generator_override, judge=judge, progress=progress,
                       store=store, compare=False)
        champ_cases = res["cases"]
        champ_eval = {"tuple_key": res["tuple_key"], "eval_at": res["at"], "evaluated_now": True, "passed": res["passed"]}
    metrics = list(suite.gate.thresholds) + [m for m in suite.gate.judge.thresholds if any(m in c["scores"] for c in cases)]
    s = suite.gate.challenger
    out = compare_paired(champ_cases, cases, metrics, tolerance=s.tolerance, confidence=s.confidence, resamples=s.resamples)
    out["champion"] = {"deployment": champion["name"], "deployment_version": champion["version"], "model": champion["model"], **champ_eval}
    out["champion_metrics"] = {m: _mean([c["scores"].get(m) for c in champ_cases]) for m in metrics}
    return out


def _answers(runtime, cases, commit, invoke):
    """(case, pipeline output, latency ms) in case order. Cases are sent `backend.max_batch_size` at a
    time: the in-process backend batches concurrent requests, and decode on a CPU is bound by memory
    bandwidth, so a batch of 8 costs little more per token than 1 (the eval gate ran ~3x faster)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    def one(case):
        t0 = time.perf_counter()
        out = invoke(runtime, {"question": case.question}, commit=commit)
        return case, out, (time.perf_counter() - t0) * 1000

    workers = max(1, min(runtime.config.backend.max_batch_size, len(cases)))
    if workers == 1:
        yield from map(one, cases)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmfti-eval") as pool:
        yield from pool.map(one, cases)  # map keeps the case order: reports and scores line up


def worst_cases(cases: list[dict], n: int) -> list[str]:
    """Case ids ranked worst first: retrieval misses first, then by the mean of their scores."""
    def badness(c):
        s = c["scores"]
        vals = [v for v in s.values() if v is not None]
        return (s.get("hit_at_k", 1.0), sum(vals) / len(vals) if vals else 0.0)

    return [c["id"] for c in sorted(cases, key=badness)[:n]]


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and v == v]  # v == v drops NaN
    return round(sum(vals) / len(vals), 6) if vals else None


def _write_artifact(home, result: dict) -> str:
    import json

    folder = home.artifacts / "evals" / result["suite"]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{result['deployment']}-v{result['deployment_version']}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return str(path.relative_to(home.root))
