"""The training-dataset pipeline: records (and documents) at pinned commits -> a versioned training
dataset of encoded examples with its lineage (CLI: `llmfti td create|recreate`).

    from llmfti.pipelines.training_dataset import create, recreate
    ds = create(store, name="qa-train", source="qa:1", event_time_until="2026-01-01",
                contexts="docs:1@release-1", top_k=4, model="smol", prompt_template="rag-default")
    recreate(store.training_dataset("qa-train:1"))["identical"]     # rebuilt from the lineage only
    create(store, name="qa-clean", source="qa:1", where="score_grounding >= 0.5", model="smol")   # filtered, recorded
    create(store, name="prefs", source="prefs:1", contexts="docs:1", model="smol-rag:1")   # preference pairs (DPO)

Modules: build (deterministic build from a resolved plan), encoder (which PromptEncoder encodes).
"""

from __future__ import annotations

from datetime import timezone

from llmfti.errors import ConfigError, IncompatibleError
from llmfti.pipelines.training_dataset import build as b
from llmfti.pipelines.training_dataset import encoder as encoding
from llmfti.store.training_datasets import TrainingDataset, TrainingDatasetSpec
from llmfti.store.training_datasets.spec import split_contexts_ref


def _iso(t) -> str | None:
    return t.astimezone(timezone.utc).isoformat() if t is not None else None


def plan(store, spec: TrainingDatasetSpec) -> tuple[b.Plan, dict]:
    """Resolve the spec's moving references (latest, tags, times) to commits."""
    from llmfti.sources.timeparse import parse_time

    records = store.feature_group(spec.source)
    until = None
    if spec.event_time_until:
        try:
            until = parse_time(spec.event_time_until)
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(f"--event-time-until {spec.event_time_until!r} is not an ISO-8601 time") from None
    # Pinned even without --as-of: what exists now is what the dataset was made from.
    resolved = {"records": {"feature_group": records.key, "commit": records.resolve_commit(spec.as_of), "as_of": spec.as_of}}
    ctx_fg = ctx_commit = None
    if spec.contexts:
        ref, at = split_contexts_ref(spec.contexts)
        docs = store.feature_group(ref)
        ctx_fg, ctx_commit = docs.key, docs.resolve_commit(at)
        resolved["contexts"] = {"feature_group": ctx_fg, "commit": ctx_commit, "as_of": at, "top_k": spec.top_k,
                                "embedder": {"id": docs.info["embedder_id"], "fingerprint": docs.info["embedder_fingerprint"]}}
    from llmfti.evaluation.leakage import LeakGuard
    from llmfti.evaluation.suites import load_suite
    from llmfti.transforms.on_demand import get_on_demand

    for name in spec.on_demand:
        get_on_demand(name)  # unknown names fail here, before any work
    excluded = sorted(LeakGuard([load_suite(s) for s in spec.exclude_contexts_of]).documents)
    resolved["retrieval"] = {"hybrid": spec.hybrid, "on_demand": list(spec.on_demand), "exclude_docs": excluded, "context_order": spec.context_order,
                             "excluded_for": list(spec.exclude_contexts_of)}
    resolved["filter"] = _filter_lineage(records, resolved["records"]["commit"], spec.where)
    return b.Plan(records.key, resolved["records"]["commit"], until, ctx_fg, ctx_commit, spec.top_k, spec.split, spec.seed,
                  spec.hybrid, tuple(spec.on_demand), tuple(excluded), spec.where, spec.context_order), resolved


def _filter_lineage(records, commit: int, where: str | None) -> dict | None:
    """What the dataset records about its filter: the SQL, and the scorer (name, version, params) of
    every score column it names, as they stood at the pinned commit."""
    import re

    from llmfti.transforms.scoring import PREFIX, scoring_state

    if not where:
        return None
    named = set(re.findall(rf"\b({PREFIX}\w+)\b", where))
    state = scoring_state(records.store.runs(records.key), commit)
    return {"where": where, "scores": {c: {k: state[c].get(k) for k in ("scorer", "version", "params", "inputs", "commit")}
                                       for c in sorted(named) if c in state}}


def create(store, spec: TrainingDatasetSpec | None = None, **kwargs) -> TrainingDataset:
    """Build and store NAME:<next version>; see `TrainingDatasetSpec` for the fields."""
    spec = spec or TrainingDatasetSpec(**kwargs)
    the_plan, resolved = plan(store, spec)
    source = encoding.resolve_model(store.home, spec.model)
    enc = encoding.build_encoder(store.home, source, spec.prompt_template, spec.max_prompt_tokens, spec.max_answer_tokens)
    built = b.build_examples(store, the_plan, enc)
    overlap = eval_overlap(built, spec.eval_suites)
    if spec.refuse_eval_overlap and any(o["examples"] for o in overlap.values()):
        worst = {ref: o["examples"] for ref, o in overlap.items() if o["examples"]}
        raise IncompatibleError(f"{spec.name}: examples overlap eval suites {sorted(worst)} ({worst}); evaluation data must not be trained on",
                                hint="synthesize records with --exclude-suite SUITE, or drop the overlapping records")
    records_fg = store.feature_group(the_plan.records_fg)
    lineage = {
        "description": spec.description,
        "sources": [{"role": "records", **resolved["records"]}] + ([{"role": "contexts", **resolved["contexts"]}] if "contexts" in resolved else []),
        "records": resolved["records"], "contexts": resolved.get("contexts"),
        "as_of": spec.as_of, "event_time_until": _iso(the_plan.event_time_until), "top_k": spec.top_k if spec.contexts else 0,
        "retrieval": resolved["retrieval"], "filter": resolved["filter"], "kind": built.kind,
        "encoder": encoding.encoder_lineage(enc, source), "seed": spec.seed, "split": spec.split,
        "rows": built.stats, "skipped": built.skipped, "missing_context_ids": built.missing_context_ids, "spec": spec.model_dump(mode="json"),
        "records_lineage": records_fg.lineage(the_plan.records_commit), "eval_overlap": overlap,
    }
    return store.training_datasets.write(spec.name, built.rows, built.content_hash, lineage, enc)


def eval_overlap(built: b.Built, suites: list[str]) -> dict:
    """Per eval suite: how many examples share a question with it, how many contain one of its
    reference passages (in the answer or a context), and which examples (by record id, first 20)."""
    from llmfti.evaluation.leakage import LeakGuard
    from llmfti.evaluation.suites import load_suite

    out = {}
    for name in suites:
        guard = LeakGuard([load_suite(name)])
        hits = [(r["doc_id"], guard.overlaps(r["question"], [r.get("answer") or r.get("chosen"), *texts]))
                for r, texts in zip(built.rows, built.context_texts)]
        hits = [(doc_id, kinds) for doc_id, kinds in hits if kinds]
        out[guard.refs[0]] = {"questions": sum("question" in k for _, k in hits), "passages": sum("passage" in k for _, k in hits),
                              "examples": [d for d, _ in hits][: b.MAX_LISTED]}
    return out


def plan_from_lineage(lin: dict) -> b.Plan:
    from llmfti.sources.timeparse import parse_time

    ctx = lin.get("contexts") or {}
    return b.Plan(
        records_fg=lin["records"]["feature_group"], records_commit=lin["records"]["commit"],
        event_time_until=parse_time(lin["event_time_until"]) if lin.get("event_time_until") else None,
        contexts_fg=ctx.get("feature_group"), contexts_commit=ctx.get("commit"), top_k=lin["top_k"], split=lin["split"], seed=lin["seed"],
        hybrid=(lin.get("retrieval") or {}).get("hybrid", False), on_demand=tuple((lin.get("retrieval") or {}).get("on_demand", ())),
        exclude_docs=tuple((lin.get("retrieval") or {}).get("exclude_docs", ())),
        where=(lin.get("filter") or {}).get("where"),
        # Datasets made before the option put the record's own context first.
        context_order=(lin.get("retrieval") or {}).get("context_order", "given-first"),
    )


def recreate(ds: TrainingDataset) -> dict:
    """Rebuild `ds` in memory from its lineage only; `identical` when the rebuilt examples AND the
    stored table both hash to the recorded content hash. Otherwise names the first differing example."""
    from llmfti.transforms.model_dependent.fingerprint import differences

    store = ds.datasets.store
    lin, e = ds.lineage, ds.lineage["encoder"]
    enc = encoding.build_encoder(store.home, e["model"], e["template"], e["max_prompt_tokens"], e["max_answer_tokens"])
    kind = lin.get("kind", "sft")
    stored = ds.examples(columns=["doc_id", *b.HASHED[kind]])
    report = {"ref": ds.ref, "content_hash": ds.content_hash, "stored_content_hash": b.content_hash(stored, kind), "rows": len(stored),
              "encoder_fingerprint_ok": enc.fingerprint == e["fingerprint"]}
    if not report["encoder_fingerprint_ok"]:
        diff = {"encoder": differences(e["components"], enc.fingerprint_components)}
        return {**report, "identical": False, "recreated_content_hash": None, "recreated_rows": None, "first_difference": diff}
    built = b.build_examples(store, plan_from_lineage(lin), enc)
    identical = built.content_hash == ds.content_hash == report["stored_content_hash"]
    diff = None if identical else b.first_difference(stored, built.rows, kind)
    return {**report, "identical": identical, "recreated_content_hash": built.content_hash, "recreated_rows": len(built.rows), "first_difference": diff}


__all__ = ["create", "plan", "plan_from_lineage", "recreate"]
