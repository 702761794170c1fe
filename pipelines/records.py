"""The records-synthesis pipeline: a documents feature group at a pinned commit -> a records feature
group of question / answer / context_ids (instruction data), with lineage (CLI: `llmfti records
synthesize`), and the scoring of a whole records group (`score`, CLI `llmfti records score`).

    from llmfti.pipelines.records import synthesize
    summary = synthesize(store, "python-reference", into="python-qa", exclude_suites=["python-reference"])

Methods: `structure` (offline and deterministic: pairs read off the chunks' own structure, see
`llmfti.transforms.synthesis`) and `teacher` (any OpenAI-compatible endpoint writes pairs from
chunks, with bounded concurrency, retries and a progress bar). Chunks of the documents the named
eval suites cite, and chunks holding their reference passages, are never used: evaluation data
does not leak into training. Each record's context is the chunk it came from; it is written through
the feature pipeline (`ingest_items`), as ONE commit holding exactly this run's records, and the
lineage (documents group, version, commit, method, parameters, seed, exclusions) is stored with it.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_text
from llmfti.pipelines.feature import IngestSummary, ingest_items
from llmfti.sources.items import QuarantineItem, SourceDocument

_TRAILING_CITATION = re.compile(r"\s*(\[\d+\]\s*)+$")
CHUNK_COLUMNS = ["chunk_id", "doc_id", "chunk_index", "heading_path", "text", "event_time"]


@dataclass
class TeacherSettings:
    base_url: str
    model: str
    api_key_env: str = "LLMFTI_TEACHER_API_KEY"
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 3


def synthesize(store, source: str, into: str, *, as_of=None, method: str = "detail", exclude_suites=(), suites_root=None,
               max_records: int | None = None, pairs_per_chunk: int = 2, seed: int = 0, teacher: TeacherSettings | None = None,
               progress: bool = False, replace: bool = False, cite: bool = True) -> IngestSummary:
    """Write NAME `into` (a records feature group, created on first use with the documents group's
    embedder) from documents group `source` read at `as_of` (default: its latest commit, pinned).

    Into an existing records group, a run adds ONE commit holding this run's records next to the
    earlier runs' (a record with the same id, same chunk and question, is updated in place);
    `replace=True` makes the group hold exactly this run's records (earlier ones deleted in that
    commit, still readable at older commits). A group of another kind is refused before any work.
    `cite=False` writes answers without their trailing [n] citation."""
    from llmfti.config.features import FeatureConfig
    from llmfti.evaluation.leakage import LeakGuard
    from llmfti.evaluation.suites import load_suite

    from llmfti.transforms.synthesis import SYNTHESIZERS

    offline = SYNTHESIZERS.names()
    if method != "teacher" and method not in offline:
        raise ConfigError(f"unknown synthesis method {method!r}: teacher or one of {', '.join(offline)}")
    if method == "teacher" and teacher is None:
        raise ConfigError("the teacher method needs a teacher endpoint (--teacher-url, --teacher-model)")
    if pairs_per_chunk < 1 or (max_records is not None and max_records < 1):
        raise ConfigError("pairs_per_chunk and max_records must be at least 1")
    docs = store.feature_group(source)
    if docs.info["kind"] != "documents":
        raise ConfigError(f"{docs.key} holds {docs.info['kind']}: synthesize from a documents feature group")
    records = store.feature_group(into, must_exist=False)
    if records.info and records.info["kind"] != "records":
        raise ConfigError(f"--into {records.key} holds {records.info['kind']}, not records: nothing was written",
                          hint="synthesize into a new group name or an existing records group")
    commit = docs.resolve_commit(as_of)
    guard = LeakGuard([load_suite(s, suites_root) for s in exclude_suites])
    chunks, excluded = _usable_chunks(docs, commit, guard)
    pairs, failed = (_teacher(chunks, pairs_per_chunk, teacher, seed, progress) if method == "teacher"
                     else _offline(method, chunks, pairs_per_chunk))
    pairs = [p for p in pairs if not guard.same_question(p[1])]
    if not cite:
        pairs = [(c, q, _TRAILING_CITATION.sub("", a)) for c, q, a in pairs]  # a pair that asks an eval question is dropped too
    if max_records is not None and len(pairs) > max_records:
        pairs = sorted(random.Random(seed).sample(pairs, max_records), key=lambda p: (p[0]["doc_id"], p[0]["chunk_index"], p[1]))
    params = {"pairs_per_chunk": pairs_per_chunk, "max_records": max_records, "replace": replace, "cite": cite}
    if teacher is not None and method == "teacher":
        params.update(teacher_model=teacher.model, teacher_url=teacher.base_url, concurrency=teacher.concurrency)
    lineage = {
        "pipeline": "records-synthesis", "documents": {"feature_group": docs.key, "commit": commit, "as_of": None if as_of is None else str(as_of)},
        "method": method, "parameters": params, "seed": seed,
        "excluded": {"suites": guard.refs, "documents": excluded["documents"], "chunks": excluded["chunks"]},
        "chunks_read": len(chunks) + excluded["documents_chunks"] + excluded["chunks"], "records": len(pairs),
    }
    items = [_record(docs.key, commit, chunk, q, a, method) for chunk, q, a in pairs] + failed
    if not any(isinstance(i, SourceDocument) for i in items):
        raise ConfigError(f"no record could be synthesized from {docs.key}@{commit} ({len(chunks)} usable chunks, {len(failed)} failures)")
    config = None if records.info else FeatureConfig(kind="records", embedder=docs.config.embedder,
                                                     description=f"records synthesized from {docs.key} ({method})")
    # replace (sync): the group holds exactly this run's records; otherwise earlier runs' records stay.
    return ingest_items(records, lambda _cfg: items, config=config, sync=replace, progress=progress, lineage=lineage)


def _usable_chunks(docs, commit: int, guard) -> tuple[list[dict], dict]:
    rows = docs.read(commit, columns=CHUNK_COLUMNS).to_pylist()
    rows.sort(key=lambda r: (r["doc_id"], r["chunk_index"]))
    kept, skipped_docs, skipped_chunks, doc_chunks = [], set(), 0, 0
    previous: tuple[str, str] | None = None
    for row in rows:
        row["section_start"] = previous != (row["doc_id"], row["heading_path"])
        previous = (row["doc_id"], row["heading_path"])
        if guard.excludes_document(row["doc_id"]):
            skipped_docs.add(row["doc_id"])
            doc_chunks += 1
        elif guard.excludes_passage(row["text"]):
            skipped_chunks += 1
        else:
            kept.append(row)
    return kept, {"documents": len(skipped_docs), "documents_chunks": doc_chunks, "chunks": skipped_chunks}


def _offline(method: str, chunks: list[dict], per_chunk: int):
    from llmfti.transforms.synthesis import SYNTHESIZERS

    make = SYNTHESIZERS.get(method)
    pairs = [(c, q, a) for c in chunks for q, a in make(c["heading_path"] or "", c["text"], per_chunk, section_start=c["section_start"])]
    return pairs, []


def _teacher(chunks: list[dict], per_chunk: int, settings: TeacherSettings, seed: int, progress: bool):
    """Ask the teacher about every chunk, `settings.concurrency` requests at a time. A chunk whose reply
    cannot be used after the client's retries becomes a quarantine item with the reason."""
    from llmfti.errors import LlmftiError
    from llmfti.models.teacher import TeacherClient
    from llmfti.transforms.synthesis import parse_teacher_pairs, teacher_messages

    client = TeacherClient(settings.base_url, settings.model, api_key_env=settings.api_key_env, timeout_s=settings.timeout_s,
                           max_retries=settings.max_retries)

    def ask(chunk):
        try:
            reply = client.chat(teacher_messages(chunk["heading_path"] or "", chunk["text"], per_chunk), seed=seed)
            return chunk, parse_teacher_pairs(reply, per_chunk), None
        except (LlmftiError, ValueError) as exc:
            return chunk, [], str(exc)

    pairs, failed = [], []
    with _bar(progress, "asking the teacher", len(chunks)) as (bar, task), ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
        for chunk, got, error in pool.map(ask, chunks):  # map keeps the chunk order: the output is deterministic
            pairs += [(chunk, q, a) for q, a in got]
            if error:
                failed.append(QuarantineItem(f"{chunk['doc_id']}#{chunk['chunk_id'][:12]}", "teacher-failed", error[:500]))
            bar.update(task, advance=1)
    return pairs, failed


def _bar(enabled: bool, what: str, total: int):
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def run():
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), disable=not enabled) as bar:
            yield bar, bar.add_task(what, total=total)

    return run()


def _record(docs_key: str, commit: int, chunk: dict, question: str, answer: str, method: str) -> SourceDocument:
    """One record: its id is stable for the same chunk text and question, so re-running on the same
    commit changes nothing and a changed chunk replaces only its own records."""
    record_id = "syn-" + sha256_text(method, chunk["chunk_id"], question)[:20]
    return SourceDocument(
        doc_id=record_id, source=f"{docs_key}:{chunk['doc_id']}", text=question + "\n\n" + answer,
        event_time=chunk["event_time"], metadata={"method": method, "source_doc": chunk["doc_id"], "heading_path": chunk["heading_path"] or ""},
        event_time_explicit=True, fields={"question": question, "answer": answer, "context_ids": [chunk["chunk_id"]]},
    )


# -- scoring a whole records group (`llmfti records score`) -----------------------------------------

FLAG_MAX_LISTED = 20


def score(store, records: str, scorers: list, *, contexts: str | None = None) -> dict:
    """Score every record of records feature group `records` (latest commit) with `scorers` (names or
    {name, params}) into columns score_<name>, as one commit: new columns are added with their values
    (LanceDB add_columns), existing ones are rewritten where a value or the scorer's version changed
    (a run that does both makes two commits, the second holding the final state). The run is recorded
    like an ingest run (`fg history`) with each column's scorer, version and params; later ingests
    score their new records with the same scorers. `contexts`: the documents feature group the
    records' context_ids name (default: the records' synthesis lineage)."""
    from llmfti.errors import ConfigError
    from llmfti.pipelines.feature import IngestSummary, record_run
    from llmfti.pipelines.record_scoring import scoring_env, scoring_inputs
    from llmfti.sources.timeparse import utcnow
    from llmfti.transforms import scoring

    fg = store.feature_group(records)
    if fg.info["kind"] != "records":
        raise ConfigError(f"{fg.key} holds {fg.info['kind']}: scores apply to records feature groups")
    if not scorers:
        raise ConfigError("name at least one scorer (--scorer NAME); registered: " + ", ".join(scoring.SCORERS.names()))
    started, t0 = utcnow(), time.perf_counter()
    specs = [{"name": s, "params": {}} if isinstance(s, str) else {"name": s["name"], "params": dict(s.get("params") or {})} for s in scorers]
    for spec in specs:
        if contexts and spec["name"] in ("grounding", "judge"):
            spec["params"].setdefault("contexts", contexts)
    commit = fg.resolve_commit(None)
    rows = fg.read(commit, columns=["chunk_id", "doc_id", "question", "answer", "context_ids", "ingested_at"]).to_pylist()
    lineage = fg.lineage(commit)
    built = scoring.build_scorers(specs, scoring_env(specs))
    targets, _ = scoring_inputs(fg, rows, built, lineage, group_rows=[])
    values = scoring.score_records(built, targets, targets)
    for spec, s in zip(specs, built):  # replayable by later ingests: the documents group without its commit
        if getattr(s, "inputs", None) and "contexts" not in spec["params"]:
            spec["params"]["contexts"] = s.inputs["contexts"].split("@")[0]
    described = scoring.describe(built)
    summary = IngestSummary(feature_group=fg.key, run_id=uuid.uuid4().hex[:16], lineage=lineage)
    summary.documents["seen"] = len(rows)
    summary.scoring = {"columns": {c: {**d, "spec": spec} for (c, d), spec in zip(described.items(), specs)}, "records": len(rows),
                       "flags": _flags(rows, values)}
    summary.documents["updated"] = _write_scores(fg, rows, values, described, scoring.scoring_state(store.runs(fg.key)))
    summary.committed = fg.table().version != commit
    summary.commit = summary.data_commit = fg.table().version if summary.committed else commit
    summary.duration_s = round(time.perf_counter() - t0, 3)
    if summary.committed:
        record_run(fg, summary, started)
    return summary.to_dict()


def _write_scores(fg, rows: list[dict], values: dict, described: dict, state: dict) -> int:
    """Write score columns; returns how many records got a new value in an existing column."""
    import pyarrow as pa

    from llmfti.store.schema import score_field

    tbl = fg.table()
    names = set(tbl.schema.names)
    new = [c for c in values if c not in names]
    if new:
        by_id = {c: dict(zip((r["doc_id"] for r in rows), values[c])) for c in new}
        schema = pa.schema([score_field(c) for c in new])

        def add(batch):  # one commit: the new columns' data files, computed batch by batch from the ids
            ids = batch.column("doc_id").to_pylist()
            return pa.RecordBatch.from_arrays([pa.array([by_id[c].get(i) for i in ids], pa.float64()) for c in new], schema=schema)

        tbl.to_lance().add_columns(add, read_columns=["doc_id"])
    old = [c for c in values if c in names]
    if not old:
        return 0
    stored = {r["doc_id"]: r for r in fg.read(columns=["doc_id", *old]).to_pylist()}
    changed_desc = {c for c in old if (state.get(c, {}).get("version"), state.get(c, {}).get("params")) != (described[c]["version"], described[c]["params"])}
    updates = []
    for i, r in enumerate(rows):
        if changed_desc or any(stored.get(r["doc_id"], {}).get(c) != values[c][i] for c in old):
            updates.append({"chunk_id": r["chunk_id"], **{c: values[c][i] for c in old}})
    if updates:
        data = pa.Table.from_pylist(updates, schema=pa.schema([pa.field("chunk_id", pa.string(), nullable=False)] + [score_field(c) for c in old]))
        fg.table().merge_insert("chunk_id").when_matched_update_all().execute(data)
    return len(updates)


def _flags(rows: list[dict], values: dict) -> dict:
    """Records a filter should look at: near-duplicates of eval questions (the leak guard's bar) and
    of earlier records."""
    from llmfti.transforms.scoring import EVAL_QUESTION_FLAG, column_name

    out = {}
    for name, threshold in (("eval_question", EVAL_QUESTION_FLAG), ("near_duplicate", 0.9)):
        col = column_name(name)
        if col in values:
            hits = [r["doc_id"] for r, v in zip(rows, values[col]) if v is not None and v >= threshold]
            out[name] = {"column": col, "threshold": threshold, "count": len(hits), "records": hits[:FLAG_MAX_LISTED]}
    return out
