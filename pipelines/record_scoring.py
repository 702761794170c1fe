"""The feature pipeline's scoring hook for records: score_<name> columns written in the same commit.

Scores are model-independent transformations (llmfti.transforms.scoring) stored as columns
score_<name>. A run scores the records it writes with the group's scorers (those earlier runs
recorded, plus the config's `scorers:`), so a column never holds nulls for records that arrived
after it was added. `llmfti records score` (llmfti.pipelines.records.score) scores a whole group,
through `scoring_env` and `scoring_inputs` here.
"""

from __future__ import annotations

from llmfti.config.features import FeatureConfig
from llmfti.errors import IncompatibleError
from llmfti.tables import sql_quote


def score_new_records(fg, config: FeatureConfig, rows: list[dict], replaced: list[str], lineage: dict | None = None) -> dict | None:
    """Add score_<name> values to `rows` (this run's records); returns what the run records about them."""
    from llmfti.errors import ConfigError
    from llmfti.transforms import scoring

    state = scoring.scoring_state(fg.store.runs(fg.key)) if fg.has_data() else {}
    specs = [d["spec"] for d in state.values() if d.get("spec")]
    specs += [s.model_dump() for s in config.scorers if scoring.column_name(s.name) not in state]
    if not specs:
        return None
    have = set(fg.table().schema.names) if fg.has_data() else None
    missing = [s["name"] for s in specs if have is not None and scoring.column_name(s["name"]) not in have]
    if missing:
        raise ConfigError(f"{fg.key} has no score column for {missing}: scorers join an existing group through one scoring run",
                          hint=f"llmfti records score {fg.key} " + " ".join(f"--scorer {m}" for m in missing))
    scorers = scoring.build_scorers(specs, scoring_env(specs))
    targets, group = scoring_inputs(fg, rows, scorers, lineage, exclude=set(replaced))
    now = scoring.describe(scorers)
    for col, was in state.items():  # new records are scored as the column's other records were
        if col in now and (now[col]["version"], now[col]["params"]) != (was["version"], was["params"]):
            raise IncompatibleError(f"{fg.key}: {col} was written by {was['scorer']} v{was['version']} {was['params']}; this run's "
                                    f"is v{now[col]['version']} {now[col]['params']}",
                                    hint=f"rescore the group: llmfti records score {fg.key} --scorer {was['scorer']}")
    values = scoring.score_records(scorers, targets, group)
    for i, row in enumerate(rows):
        row.update({col: vals[i] for col, vals in values.items()})
    return {"columns": {c: {**d, "spec": spec} for (c, d), spec in zip(now.items(), specs)}, "records": len(rows)}


def scoring_env(specs: list[dict]):
    """The resources scorers need, resolved here (the scorers sit below the stores): eval suites
    (eval_question) and a judge client (judge)."""
    from llmfti.transforms.scoring import ScoringEnv

    env = ScoringEnv()
    for spec in specs:
        params = spec.get("params") or {}
        if spec["name"] == "eval_question":
            from llmfti.evaluation.suites import load_suite

            for name in [params["suites"]] if isinstance(params.get("suites"), str) else params.get("suites") or []:
                suite = load_suite(name)
                env.suites[name] = (suite.ref, [c.question for c in suite.cases])
        if spec["name"] == "judge" and params.get("base_url") and params.get("model"):
            from llmfti.models.teacher import TeacherClient

            client = TeacherClient(params["base_url"], params["model"], api_key_env=params.get("api_key_env", "LLMFTI_JUDGE_API_KEY"),
                                   temperature=0.0, max_tokens=8)
            env.chat = lambda messages, c=client: c.chat(messages, seed=0)
    return env


def scoring_inputs(fg, rows: list[dict], scorers, lineage: dict | None = None, *, exclude: set = frozenset(),
                   group_rows: list[dict] | None = None) -> tuple[list, list]:
    """(targets, group) ScoreInputs for `rows`. The group (`rows` plus the stored records not in
    `exclude`, or `group_rows`) is read only for scorers that compare records; contexts only for
    scorers that read them."""
    from llmfti.transforms.scoring import ScoreInput

    def as_input(r, contexts=None):
        return ScoreInput(r["doc_id"], r["question"] or "", r["answer"] or "", contexts, (r["ingested_at"], r["doc_id"]))

    contexts = context_texts(fg, rows, scorers, lineage) if any(getattr(s, "uses_contexts", False) for s in scorers) else {}
    targets = [as_input(r, contexts.get(r["doc_id"])) for r in rows]
    group = targets
    if any(getattr(s, "uses_group", False) for s in scorers):
        if group_rows is None:
            group_rows = fg.read(columns=["doc_id", "question", "answer", "ingested_at"]).to_pylist() if fg.has_data() else []
        mine = {r["doc_id"] for r in rows}
        group = targets + [as_input(r) for r in group_rows if r["doc_id"] not in mine and r["doc_id"] not in exclude]
    return targets, group


def context_texts(fg, rows: list[dict], scorers, lineage: dict | None = None) -> dict[str, list[str] | None]:
    """{record id: texts of its context_ids, None when it names none}, read from the documents feature
    group they point into: the scorers' `contexts` param (DOCS[:V][@COMMIT]), else the records'
    synthesis lineage (at its pinned commit). Sets each such scorer's `inputs` (recorded)."""
    from llmfti.errors import ConfigError
    from llmfti.store.training_datasets.spec import split_contexts_ref

    ref = next((s.params.get("contexts") for s in scorers if getattr(s, "uses_contexts", False) and s.params.get("contexts")), None)
    docs_lineage = ((lineage if lineage is not None else fg.lineage()) or {}).get("documents") or {}
    if ref is None and not docs_lineage:
        if not any(r.get("context_ids") for r in rows):
            return {}
        raise ConfigError(f"scoring {fg.key}: which documents feature group do the records' context_ids name?",
                          hint="give it to the scorer: --contexts DOCS_FG (params.contexts)")
    name, at = split_contexts_ref(ref) if ref else (docs_lineage["feature_group"], None)
    docs = fg.store.feature_group(name)
    commit = docs.resolve_commit(at if at is not None else (docs_lineage.get("commit") if docs.key == docs_lineage.get("feature_group") else None))
    for s in scorers:
        if getattr(s, "uses_contexts", False):
            s.inputs = {"contexts": f"{docs.key}@{commit}"}
    ids = sorted({c for r in rows for c in (r.get("context_ids") or [])})
    found: dict[str, list[str]] = {}
    if ids:
        quoted = ", ".join(sql_quote(i) for i in ids)
        chunks = docs.read(commit, columns=["chunk_id", "doc_id", "chunk_index", "text"], where=f"chunk_id IN ({quoted}) OR doc_id IN ({quoted})")
        for r in sorted(chunks.to_pylist(), key=lambda r: (r["doc_id"], r["chunk_index"])):
            found.setdefault(r["chunk_id"], []).append(r["text"])
            if r["doc_id"] != r["chunk_id"]:
                found.setdefault(r["doc_id"], []).append(r["text"])
    return {r["doc_id"]: [t for c in r["context_ids"] for t in found.get(c, [])] if r.get("context_ids") else None for r in rows}
