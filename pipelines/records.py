"""The records-synthesis pipeline: a documents feature group at a pinned commit -> a records feature
group of question / answer / context_ids (instruction data), with lineage (CLI: `llmfti records
synthesize`).

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_text
from llmfti.pipelines.feature import IngestSummary, ingest_items
from llmfti.sources.items import QuarantineItem, SourceDocument

CHUNK_COLUMNS = ["chunk_id", "doc_id", "chunk_index", "heading_path", "text", "event_time"]


@dataclass
class TeacherSettings:
    base_url: str
    model: str
    api_key_env: str = "LLMFTI_TEACHER_API_KEY"
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 3


def synthesize(store, source: str, into: str, *, as_of=None, method: str = "structure", exclude_suites=(), suites_root=None,
               max_records: int | None = None, pairs_per_chunk: int = 2, seed: int = 0, teacher: TeacherSettings | None = None,
               progress: bool = False) -> IngestSummary:
    """Write NAME `into` (a records feature group, created on first use with the documents group's
    embedder) from documents group `source` read at `as_of` (default: its latest commit, pinned)."""
    from llmfti.config.features import FeatureConfig
    from llmfti.evaluation.leakage import LeakGuard
    from llmfti.evaluation.suites import load_suite

    if method not in ("structure", "teacher"):
        raise ConfigError(f"unknown synthesis method {method!r}: structure or teacher")
    if method == "teacher" and teacher is None:
        raise ConfigError("the teacher method needs a teacher endpoint (--teacher-url, --teacher-model)")
    if pairs_per_chunk < 1 or (max_records is not None and max_records < 1):
        raise ConfigError("pairs_per_chunk and max_records must be at least 1")
    docs = store.feature_group(source)
    if docs.info["kind"] != "documents":
        raise ConfigError(f"{docs.key} holds {docs.info['kind']}: synthesize from a documents feature group")
    commit = docs.resolve_commit(as_of)
    guard = LeakGuard([load_suite(s, suites_root) for s in exclude_suites])
    chunks, excluded = _usable_chunks(docs, commit, guard)
    pairs, failed = (_structure(chunks, pairs_per_chunk) if method == "structure"
                     else _teacher(chunks, pairs_per_chunk, teacher, seed, progress))
    pairs = [p for p in pairs if not guard.same_question(p[1])]  # a pair that asks an eval question is dropped too
    if max_records is not None and len(pairs) > max_records:
        pairs = sorted(random.Random(seed).sample(pairs, max_records), key=lambda p: (p[0]["doc_id"], p[0]["chunk_index"], p[1]))
    params = {"pairs_per_chunk": pairs_per_chunk, "max_records": max_records}
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
    records = store.feature_group(into, must_exist=False)
    config = None if records.info else FeatureConfig(kind="records", embedder=docs.config.embedder,
                                                     description=f"records synthesized from {docs.key} ({method})")
    # sync: the group holds exactly the records synthesized from this commit (older ones are deleted).
    return ingest_items(records, lambda _cfg: items, config=config, sync=True, progress=progress, lineage=lineage)


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


def _structure(chunks: list[dict], per_chunk: int):
    from llmfti.transforms.synthesis import SYNTHESIZERS

    make = SYNTHESIZERS.get("structure")
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
