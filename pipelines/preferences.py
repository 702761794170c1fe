"""The preference-pairs pipeline: reference answers the platform already has + a deployment's own
answers -> a preferences feature group (prompt, chosen, rejected, context_ids), with lineage (CLI:
`llmfti records preferences`). Its output is what `td create` encodes and `finetune` (method dpo) aligns on.

    from llmfti.pipelines.preferences import build_pairs
    summary = build_pairs(store, "python-prefs", deployment="python-docs", records="python-qa")
    summary = build_pairs(store, "prefs", deployment="python-docs", suite="my-training-suite", staged=True)
    summary = build_pairs(store, "prefs", deployment="python-docs", records="python-qa", versus="python-docs", versus_staged=True,
                          judge=TeacherClient(url, model))      # two versions' answers, ranked by a judge

For each question, `chosen` is the reference answer (a records group's answers, or an eval suite's
references) and `rejected` is what the deployment answers: its own inference pipeline, run
in-process as `llmfti eval` runs it (the active version, or the staged one), every question reading
one pinned feature-group commit. A question the deployment answers with the reference itself gives
no preference and is skipped. With `versus` (another deployment, or the staged version of the same
one) both answer every question and a judge (any OpenAI-compatible model) ranks the two answers,
asked in both orders; the preferred one is chosen, and a question whose two verdicts disagree
(position bias, a tie) is skipped. Each pair keeps the chunk ids the deployment's prompt used, so `td
create` rebuilds the very prompt that produced the rejected answer. Pairs asking an eval question of
`exclude_suites`, or whose served prompt held a document the suite cites or one of its reference
passages, are dropped: the deployment retrieves from the whole feature group, and evaluation data
must not come back into training through its contexts. The
pairs are written through the feature pipeline (`ingest_items`, kind preferences) as ONE commit that
holds exactly this run's pairs, with the lineage: source and commit, deployment version, model,
feature group and commit.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_text
from llmfti.pipelines.feature import IngestSummary, ingest_items
from llmfti.sources.items import QuarantineItem, SourceDocument
from llmfti.sources.timeparse import utcnow


def build_pairs(store, into: str, *, deployment: str, records: str | None = None, suite: str | None = None, staged: bool = False,
                version: int | None = None, max_pairs: int | None = None, seed: int = 0, exclude_suites=(), where: str | None = None,
                versus: str | None = None, versus_staged: bool = False, judge=None, generator_override=None,
                versus_generator_override=None, progress: bool = False) -> IngestSummary:
    """Write preferences feature group `into` (created on first use with the records' or the
    deployment's embedder). `where`: a LanceDB SQL filter on the records (e.g. on score columns).
    `judge`: with `versus`, a client with `chat(messages) -> str` (llmfti.models.teacher.TeacherClient)."""
    from llmfti.config.features import FeatureConfig
    from llmfti.evaluation.leakage import LeakGuard
    from llmfti.evaluation.suites import load_suite
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore, tuple_key

    if (records is None) == (suite is None):
        raise ConfigError("give exactly one source of reference answers: records (a records feature group) or suite (an eval suite)")
    if versus is not None and judge is None:
        raise ConfigError("ranking two deployments' answers needs a judge (--judge-url and --judge-model)")
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError("max_pairs must be at least 1")
    if where and records is None:
        raise ConfigError("where filters a records feature group: give records")
    target = store.feature_group(into, must_exist=False)
    if target.info and target.info["kind"] != "preferences":  # checked before any answer is generated: nothing written
        raise ConfigError(f"--into {target.key} holds {target.info['kind']}, not preferences: nothing was written",
                          hint="write preference pairs into a new group name or an existing preferences group")
    questions, source = _references(store, records, suite, load_suite, where)
    guard = LeakGuard([load_suite(s) for s in exclude_suites])
    questions = [q for q in questions if not guard.same_question(q["question"])]
    if max_pairs is not None and len(questions) > max_pairs:
        questions = sorted(random.Random(seed).sample(questions, max_pairs), key=lambda q: q["id"])
    if not questions:
        raise ConfigError(f"no question to ask: {source} holds none outside the excluded suites")
    deployments = DeploymentStore(store.home)
    record = deployments.staged(deployment, version) if staged else (deployments.get(deployment, version) if version else deployments.active(deployment))
    runtime = build_runtime(store.home, record, RuntimeCache(), generator_override)
    commit = runtime.latest_commit() if runtime.commits is not None and runtime.commits.pinned is None else runtime.commit_for_request()
    answers = _ask(runtime, questions, commit, progress)
    key = tuple_key(runtime.config, commit)
    other = None
    if versus is not None:
        rec2 = deployments.staged(versus) if versus_staged else deployments.active(versus)
        rt2 = build_runtime(store.home, rec2, RuntimeCache(), versus_generator_override)
        commit2 = rt2.latest_commit() if rt2.commits is not None and rt2.commits.pinned is None else rt2.commit_for_request()
        other = {"record": rec2, "runtime": rt2, "commit": commit2, "answers": _ask(rt2, questions, commit2, progress)}
        key = tuple_key(runtime.config, commit) + ":" + tuple_key(rt2.config, commit2)
    items, same, failed, undecided, leaky = [], 0, 0, 0, 0
    for i, (q, (out, error)) in enumerate(zip(questions, answers)):
        out2, error2 = other["answers"][i] if other else (None, None)
        if error is not None or error2 is not None:
            failed += 1
            items.append(QuarantineItem(f"{source}#{q['id']}", "generation-failed", (error or error2)[:500]))
        elif guard.suites and any(guard.excludes_document(c.get("doc_id") or "") or guard.excludes_passage(c["text"]) for c in out["citations"]):
            leaky += 1
        elif other is None and _same(out["answer"], q["reference"]):
            same += 1
        elif other is None:
            items.append(_pair(q, q["reference"], out["answer"], out, key))
        elif _same(out["answer"], out2["answer"]):
            same += 1
        else:
            from llmfti.transforms.scoring import rank_pair

            winner = rank_pair(judge.chat if hasattr(judge, "chat") else judge, q["question"], [c["text"] for c in out["citations"]],
                               out["answer"], out2["answer"], q.get("reference"))
            if winner is None:
                undecided += 1
            else:
                chosen, rejected = (out, out2) if winner == 0 else (out2, out)
                items.append(_pair(q, chosen["answer"], rejected["answer"], out, key))
    pairs = sum(isinstance(i, SourceDocument) for i in items)
    if not pairs:
        raise ConfigError(f"no preference pair: {len(questions)} questions, {same} answered alike, {undecided} undecided by the judge, "
                          f"{leaky} served with an excluded suite's contexts, {failed} failed")
    lineage = {
        "pipeline": "preference-pairs", "source": source if isinstance(source, dict) else {"suite": source},
        "chosen": "the judge's preferred answer" if other else "reference answer",
        "rejected": "the other deployment's answer" if other else "the deployment's answer",
        "deployment": {"name": record["name"], "version": int(record["version"]), "model": runtime.config.model,
                       "feature_group": runtime.config.feature_group, "commit": commit, "tuple_key": key, "staged": staged},
        "parameters": {"max_pairs": max_pairs, "seed": seed, "where": where},
        "excluded": {"suites": guard.refs, "pairs_with_suite_contexts": leaky},
        "questions": len(questions), "pairs": pairs, "skipped_same_answer": same, "failed": failed,
    }
    if other is not None:
        rt2, rec2 = other["runtime"], other["record"]
        lineage["versus"] = {"name": rec2["name"], "version": int(rec2["version"]), "model": rt2.config.model,
                             "feature_group": rt2.config.feature_group, "commit": other["commit"], "staged": versus_staged}
        lineage["judge"] = {"model": getattr(judge, "model", None), "base_url": getattr(judge, "base_url", None), "orders": 2}
        lineage["skipped_undecided"] = undecided
    prefs = store.feature_group(into, must_exist=False)
    # A new group embeds prompts as its source does (the records' embedder, else the deployment's).
    embedder = store.feature_group(records).config.embedder if records else (runtime.fg.config.embedder if runtime.fg else None)
    config = None if prefs.info else FeatureConfig(kind="preferences", **({"embedder": embedder} if embedder else {}),
                                                    description=f"preference pairs: references vs {record['name']} v{record['version']}")
    return ingest_items(prefs, lambda _cfg: items, config=config, sync=True, progress=progress, lineage=lineage)


def _references(store, records: str | None, suite: str | None, load_suite, where: str | None = None) -> tuple[list[dict], object]:
    """[{id, question, reference, event_time}] and a description of where they came from."""
    if records is not None:
        fg = store.feature_group(records)
        if fg.info["kind"] != "records":
            raise ConfigError(f"{fg.key} holds {fg.info['kind']}: reference answers come from a records feature group")
        commit = fg.resolve_commit(None)
        rows = fg.read(commit, columns=["doc_id", "question", "answer", "event_time"], where=where).to_pylist()
        return ([{"id": r["doc_id"], "question": r["question"], "reference": r["answer"], "event_time": r["event_time"]}
                 for r in sorted(rows, key=lambda r: r["doc_id"])], {"records": {"feature_group": fg.key, "commit": commit}})
    s = load_suite(suite)
    now = utcnow()
    return [{"id": c.id, "question": c.question, "reference": c.reference, "event_time": now} for c in s.cases], s.ref


def _ask(runtime, questions: list[dict], commit, progress: bool) -> list[tuple[dict | None, str | None]]:
    """(pipeline output, error) per question, in order; `backend.max_batch_size` requests at a time
    (the in-process backend batches concurrent requests, as in `llmfti eval`)."""
    from llmfti.errors import LlmftiError
    from llmfti.pipelines.inference.online import invoke

    def one(q):
        try:
            return invoke(runtime, {"question": q["question"]}, commit=commit), None
        except LlmftiError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    workers = max(1, min(runtime.config.backend.max_batch_size, len(questions)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmfti-prefs") as pool:
        return list(pool.map(one, questions))  # map keeps the order: the output is deterministic


def _same(answer: str, reference: str) -> bool:
    norm = lambda t: " ".join((t or "").lower().split())  # noqa: E731
    return norm(answer) == norm(reference)


def _pair(q: dict, chosen: str, rejected: str, out: dict, key: str) -> SourceDocument:
    """One pair with the contexts of `out`'s prompt; its id is stable for the same question and
    deployment tuple(s), so a re-run changes nothing."""
    return SourceDocument(
        doc_id="pref-" + sha256_text(key, q["id"], q["question"])[:20], source=str(q["id"]), text=f"{q['question']}\n\n{chosen}\n\n{rejected}",
        event_time=q["event_time"], metadata={"commit": out["versions"].get("commit")},  # no request id: a re-run must hash the same
        event_time_explicit=True,
        fields={"question": q["question"], "chosen": chosen, "rejected": rejected, "context_ids": [c["chunk_id"] for c in out["citations"]]},
    )
