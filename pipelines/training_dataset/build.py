"""Building a training dataset's examples in memory from a *resolved* plan (fixed commits only).

Steps, all deterministic: read the records feature group at its pinned commit (rows matching the
`where` filter, e.g. on score columns) -> keep `event_time <= until` -> sort by doc_id -> contexts for each question (the record's own
`context_ids` first, then the best chunks retrieved from the documents feature group at ITS pinned
commit, with that feature group's own embedder, exactly as the agent retrieves) -> encode with the
one PromptEncoder (`encode_example`, whose prompt is `encode_prompt`: no training/serving skew) ->
split by a seeded hash of the record id (a record keeps its split when others are added) -> content
hash over (example_id, input_ids, labels, split) in order.

A preference feature group (prompt, chosen, rejected) gives preference examples instead: the prompt
ids once (`encode_prompt`, through `encode_example` exactly as for SFT), then the chosen and the
rejected answer's ids, each ending with EOS; the hash is over (example_id, prompt_ids, chosen_ids,
rejected_ids, split).

`create` and `recreate` (this package's __init__) both call `build_examples`; only `create` resolves
tags and times first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from llmfti.errors import ConfigError, IncompatibleError
from llmfti.hashing import sha256_text
from llmfti.tables import sql_quote

RECORD_COLUMNS = ["doc_id", "doc_hash", "question", "answer", "context_ids", "event_time", "ingested_at"]
PREFERENCE_COLUMNS = ["doc_id", "doc_hash", "question", "chosen", "rejected", "context_ids", "event_time", "ingested_at"]
# The dataset kind each source kind builds, and the columns its content hash covers (in this order).
DATASET_KIND = {"records": "sft", "preferences": "preferences"}
HASHED = {"sft": ("example_id", "input_ids", "labels", "split"), "preferences": ("example_id", "prompt_ids", "chosen_ids", "rejected_ids", "split")}
MAX_LISTED = 20  # skipped / missing ids listed in the lineage (counts are always complete)


@dataclass
class Plan:
    """Everything a build depends on, with moving references already resolved to commits."""

    records_fg: str  # NAME:VERSION
    records_commit: int
    event_time_until: object | None  # aware datetime or None
    contexts_fg: str | None
    contexts_commit: int | None
    top_k: int
    split: float
    seed: int
    hybrid: bool = False  # the deployment's retrieval.hybrid
    on_demand: tuple[str, ...] = ()  # on-demand features computed as of each record's event time (query normalization, template slots)
    exclude_docs: tuple[str, ...] = ()  # documents never retrieved as contexts (an eval suite's sources)
    where: str | None = None  # a LanceDB SQL filter on the records at the pinned commit (e.g. on score columns)
    context_order: str = "given-first"  # "retrieval": the record's context where retrieval ranks it (see TrainingDatasetSpec)


@dataclass
class Built:
    rows: list[dict]
    content_hash: str
    stats: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    missing_context_ids: list[str] = field(default_factory=list)
    context_texts: list[list[str]] = field(default_factory=list)  # per row: the contexts' text (for leak checks; not stored)
    kind: str = "sft"  # "sft" (input_ids, labels) or "preferences" (prompt_ids, chosen_ids, rejected_ids)


def split_of(doc_id: str, seed: int, train_share: float) -> str:
    """'train' or 'eval' from a seeded hash of the record id alone, so adding records moves no one."""
    u = int(sha256_text("llmfti-split", str(seed), doc_id)[:15], 16) / float(16**15)
    return "train" if u < train_share else "eval"


def content_hash(rows: list[dict], kind: str = "sft") -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([_plain(r[k]) for k in HASHED[kind]], separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def read_records(store, plan: Plan) -> tuple[list[dict], int, int, str]:
    """Records at the pinned commit that match the filter, inside the event-time window, sorted by
    doc_id; how many the window cut, how many the filter left out, and the source kind."""
    fg = store.feature_group(plan.records_fg)
    kind = fg.info["kind"]
    if kind not in DATASET_KIND:
        raise IncompatibleError(f"{fg.key} holds {kind}, not records or preferences",
                                hint="ingest Q&A JSONL with --kind records, or preference pairs with --kind preferences")
    columns = RECORD_COLUMNS if kind == "records" else PREFERENCE_COLUMNS
    try:
        rows = fg.read(plan.records_commit, columns=columns, where=plan.where).to_pylist()
    except Exception as exc:  # lancedb raises assorted types (ValueError, RuntimeError, lance errors) for bad SQL
        if not plan.where:
            raise
        names = [f.name for f in fg.as_of(plan.records_commit).schema if f.name != "vector"]
        raise ConfigError(f"--where {plan.where!r} does not apply to {fg.key} at commit {plan.records_commit}: {str(exc).splitlines()[0]}",
                          hint="columns: " + ", ".join(names)) from None
    filtered = fg.as_of(plan.records_commit).count_rows() - len(rows) if plan.where else 0
    kept = [r for r in rows if plan.event_time_until is None or (r["event_time"] is not None and r["event_time"] <= plan.event_time_until)]
    return sorted(kept, key=lambda r: r["doc_id"]), len(rows) - len(kept), filtered, kind


class ContextSource:
    """The documents feature group checked out at one commit, with its own embedder."""

    COLUMNS = ["chunk_id", "doc_id", "source", "chunk_index", "text"]

    def __init__(self, store, fg_key: str, commit: int):
        self.fg = store.feature_group(fg_key)
        self.table = self.fg.as_of(commit)
        self.embedder = self.fg.embedder()

    def given(self, ids: list[str]) -> dict[str, list[dict]]:
        """Rows for ids that are chunk ids, or doc ids (all of a document's chunks, in order)."""
        if not ids:
            return {}
        quoted = ", ".join(sql_quote(i) for i in sorted(set(ids)))
        rows = self.table.search().where(f"chunk_id IN ({quoted}) OR doc_id IN ({quoted})").select(self.COLUMNS).limit(None).to_list()
        out: dict[str, list[dict]] = {}
        for r in sorted(rows, key=lambda r: (r["doc_id"], r["chunk_index"], r["chunk_id"])):
            out.setdefault(r["chunk_id"], []).append(r)
            if r["doc_id"] != r["chunk_id"]:
                out.setdefault(r["doc_id"], []).append(r)
        return out

    def retrieve(self, question: str, k: int, *, hybrid: bool = False, features: dict | None = None, where: str | None = None) -> list[dict]:
        # THE retrieval the agent runs (llmfti.store.retrieval), at the pinned commit with the same
        # settings, so training contexts are the ones the model will be served with.
        from llmfti.store.retrieval import retrieve_contexts

        return retrieve_contexts(self.table, self.embedder, question, k, hybrid=hybrid, where=where, features=features)


def contexts_for(record: dict, source: ContextSource | None, given_rows: dict, top_k: int, missing: set, *, hybrid: bool = False,
                 features: dict | None = None, where: str | None = None, order: str = "given-first", seed: int = 0) -> list:
    from llmfti.transforms.model_dependent import Context

    if order == "retrieval" and source is not None:
        return [Context(chunk_id=r["chunk_id"], text=r["text"], score=r["score"], source=r["source"])
                for r in _retrieval_ordered(record, source, given_rows, top_k, missing, hybrid, features, where, seed)]
    chosen: list[dict] = []
    seen: set[str] = set()
    for cid in record.get("context_ids") or []:
        if cid not in given_rows:
            missing.add(cid)
        for r in given_rows.get(cid, []):
            if r["chunk_id"] not in seen:
                seen.add(r["chunk_id"])
                chosen.append({**r, "score": 1.0})
    if source is not None and len(chosen) < top_k:
        for r in source.retrieve(record["question"], top_k + len(chosen), hybrid=hybrid, features=features, where=where):
            if len(chosen) >= top_k:
                break
            if r["chunk_id"] not in seen:
                seen.add(r["chunk_id"])
                chosen.append(r)
    return [Context(chunk_id=r["chunk_id"], text=r["text"], score=r["score"], source=r["source"]) for r in chosen]


def _retrieval_ordered(record, source, given_rows, top_k, missing, hybrid, features, where, seed) -> list[dict]:
    """The top-k contexts in the deployment's retrieval order. A record's own chunks keep the rank
    retrieval gives them; one that retrieval misses takes a seeded place among the top k (replacing a
    retrieved chunk), so the answering context is not always [1], as it is not when serving."""
    given: list[dict] = []
    for cid in record.get("context_ids") or []:
        if cid not in given_rows:
            missing.add(cid)
        given += [r for r in given_rows.get(cid, []) if r["chunk_id"] not in {g["chunk_id"] for g in given}]
    given = given[:top_k]
    given_ids = {g["chunk_id"] for g in given}
    retrieved = source.retrieve(record["question"], top_k, hybrid=hybrid, features=features, where=where)[:top_k]
    ranked = list(retrieved)
    missed = [g for g in given if g["chunk_id"] not in {r["chunk_id"] for r in ranked}]
    others = [r for r in ranked if r["chunk_id"] not in given_ids]
    keep = others[: max(0, top_k - len(given))]
    out = [r for r in ranked if r["chunk_id"] in given_ids or r in keep]
    for g in missed:
        at = int(sha256_text("llmfti-context-place", str(seed), record["doc_id"], g["chunk_id"])[:8], 16) % (len(out) + 1)
        out.insert(at, {**g, "score": 1.0})
    return out


def renumber_citations(answer: str, context_ids: list[str], placed: list[str]) -> str:
    """The answer's [n] (n-th of the record's own context_ids) as the number that context has in the
    prompt (`placed`: the chunk ids in prompt order). Citations of contexts not placed are left as written."""
    import re

    def sub(m):
        n = int(m.group(1))
        if 1 <= n <= len(context_ids) and context_ids[n - 1] in placed:
            return f"[{placed.index(context_ids[n - 1]) + 1}]"
        return m.group(0)

    return re.sub(r"\[(\d+)\]", sub, answer)


def build_examples(store, plan: Plan, encoder) -> Built:
    from llmfti.transforms.model_dependent import PromptTooLong
    from llmfti.transforms.on_demand import compute_features

    records, cut, filtered, source_kind = read_records(store, plan)
    kind = DATASET_KIND[source_kind]
    if not records:
        raise ConfigError(f"{plan.records_fg} has no records at commit {plan.records_commit} inside the event-time window"
                          + (f" matching --where {plan.where!r} ({filtered} left out)" if plan.where else ""))
    source = ContextSource(store, plan.contexts_fg, plan.contexts_commit) if plan.contexts_fg else None
    given_rows = source.given([c for r in records for c in (r.get("context_ids") or [])]) if source else {}
    missing: set[str] = set()
    rows, skipped, texts = [], [], []
    stats = {"records_read": len(records) + cut + filtered, "excluded_by_event_time": cut, "excluded_by_filter": filtered,
             "truncated_prompts": 0, "truncated_answers": 0}
    where = ("doc_id NOT IN (" + ", ".join(sql_quote(d) for d in sorted(plan.exclude_docs)) + ")") if plan.exclude_docs else None
    for rec in records:
        # The same on-demand functions as serving, evaluated as of the record's own time (backfill).
        features = compute_features(list(plan.on_demand), {"question": rec["question"]}, rec["event_time"]) if plan.on_demand else {}
        contexts = contexts_for(rec, source, given_rows, plan.top_k, missing, hybrid=plan.hybrid, features=features, where=where,
                                order=plan.context_order, seed=plan.seed)
        slots = {f: features[f] for f in encoder.template.features if f in features}
        try:
            answers = [rec["answer"]] if kind == "sft" else [rec["chosen"], rec["rejected"]]
            if plan.context_order == "retrieval":  # [n] names the n-th of the record's context_ids: say where it now stands
                answers = [renumber_citations(a, list(rec.get("context_ids") or []), [c.chunk_id for c in contexts]) for a in answers]
            encoded = [encoder.encode_example(rec["question"], a, contexts, slots) for a in answers]
        except PromptTooLong as exc:
            skipped.append({"doc_id": rec["doc_id"], "reason": str(exc)})
            continue
        ex = encoded[0]
        texts.append([c.text for c in ex.contexts_used])
        stats["truncated_prompts"] += int(ex.truncated)
        stats["truncated_answers"] += int(any(e.answer_truncated for e in encoded))
        row = {
            "example_id": sha256_text(rec["doc_id"], rec["doc_hash"] or "")[:32], "doc_id": rec["doc_id"],
            "split": split_of(rec["doc_id"], plan.seed, plan.split), "question": rec["question"],
            "context_ids": [c.chunk_id for c in ex.contexts_used], "prompt_length": ex.prompt_length,
            "event_time": rec["event_time"], "ingested_at": rec["ingested_at"],
        }
        if kind == "sft":
            row.update(answer=answers[0], input_ids=ex.input_ids, labels=ex.labels)
        else:  # one prompt (the same encode_prompt ids in both encodings), two answers each ending with EOS
            n = ex.prompt_length
            row.update(chosen=rec["chosen"], rejected=rec["rejected"], prompt_ids=ex.input_ids[:n], chosen_ids=ex.input_ids[n:],
                       rejected_ids=encoded[1].input_ids[n:])
        rows.append(row)
    if not rows:
        raise ConfigError(f"no example could be encoded ({len(skipped)} skipped: {skipped[0]['reason'] if skipped else ''})")
    stats.update(
        total=len(rows), train=sum(r["split"] == "train" for r in rows), eval=sum(r["split"] == "eval" for r in rows),
        skipped=len(skipped), missing_context_ids=len(missing),
    )
    return Built(rows, content_hash(rows, kind), stats, skipped[:MAX_LISTED], sorted(missing)[:MAX_LISTED], texts, kind)


def first_difference(stored: list[dict], rebuilt: list[dict], kind: str = "sft") -> dict | None:
    """The first example that differs between two builds, named by position and record id."""
    for i, (a, b) in enumerate(zip(stored, rebuilt)):
        fields = [k for k in HASHED[kind] if _plain(a[k]) != _plain(b[k])]
        if fields:
            return {"index": i, "stored_doc_id": a["doc_id"], "recreated_doc_id": b["doc_id"], "fields": fields}
    if len(stored) != len(rebuilt):
        i = min(len(stored), len(rebuilt))
        extra = (stored if len(stored) > len(rebuilt) else rebuilt)[i]
        return {"index": i, "only_in": "stored" if len(stored) > len(rebuilt) else "recreated", "doc_id": extra["doc_id"]}
    return None


def _plain(value):
    return list(value) if not isinstance(value, str) and hasattr(value, "__iter__") else value
