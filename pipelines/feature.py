"""The feature pipeline: documents (or Q&A records) -> one feature-group commit.

    from llmfti.pipelines.feature import ingest
    summary = ingest("docs", ["corpus/"], home=".llmfti")               # creates docs:1 on first use
    summary = ingest(FeatureStore(home).feature_group("docs:1"), ["corpus/"], sync=True)

load -> clean -> chunk -> embed -> one atomic commit (CLI: `llmfti ingest`).

Incremental: a document whose content hash is unchanged is skipped without embedding; a changed
document has its chunks replaced; documents missing from the sources are deleted only with
`sync=True`. All writes of a run land in ONE LanceDB commit (a merge-insert that inserts the new
chunks and deletes the replaced ones), so a process killed at any point leaves the table at its last
commit, and a re-run finishes the job with nothing lost or duplicated. A run that changes nothing
makes no commit.

`engine="ray"` (`--engine ray`) runs chunking, embedding and the writing of the new rows on Ray Data
and commits them here in the same single transaction (`llmfti.pipelines.ray_engine`); everything
before (loading, cleaning, quarantine, change detection) is this module's code either way.

The commit itself is `llmfti.pipelines.feature_commit`; what the table holds (stored documents, what
`sync` keeps, the vouched state that lets a no-op skip the table) is `llmfti.pipelines.feature_state`;
the records' scoring hook (score columns written in the same commit) is `llmfti.pipelines.record_scoring`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from llmfti.config.features import FeatureConfig
from llmfti.errors import IncompatibleError
from llmfti.hashing import sha256_text
from llmfti.sources.loaders import QuarantineItem, SourceDocument, load_sources
from llmfti.sources.timeparse import utcnow
from llmfti.pipelines.feature_commit import commit_rows, write_quarantine
from llmfti.pipelines.feature_state import known_documents, protected_doc_ids, state_after_run, vouched_by_scan
from llmfti.pipelines.record_scoring import score_new_records
from llmfti.store.feature_store import RUNS
from llmfti.transforms.model_independent.clean import clean_text
from llmfti.transforms.registry import get_chunker

WHOLE_KINDS = ("records", "preferences")  # kept whole (one row per record), with typed fields


@dataclass
class IngestSummary:
    feature_group: str
    run_id: str
    documents: dict = field(default_factory=lambda: dict.fromkeys(["seen", "added", "updated", "unchanged", "deleted", "quarantined"], 0))
    chunks_written: int = 0
    chunks_deleted: int = 0
    commit: int | None = None  # the table version after this run and its index maintenance (None: no data)
    data_commit: int | None = None  # the version holding this run's data change, when it made one
    committed: bool = False  # whether this run made a data commit
    duration_s: float = 0.0
    quarantine: list[dict] = field(default_factory=list)
    lineage: dict | None = None  # where the items came from, when a pipeline produced them (records synthesis)
    scoring: dict | None = None  # records: score columns this run wrote and their scorers (see score_new_records)
    properties: dict | None = None  # stored in the data commit itself (a stream's partition offsets: llmfti.pipelines.stream)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_config(fg, config: FeatureConfig | None, embedder) -> tuple[FeatureConfig, object]:
    """The stored config pins an existing version; a given config must produce the same fingerprints."""
    from llmfti.models.embedders import load_embedder

    stored = fg.config if fg.info else None
    config = config or stored or FeatureConfig()
    if stored and config.embedder.dtype == "auto":
        # 'auto' means "whatever the version was created with": the dtype is part of the vectors. The
        # metadata's embedder_dtype is the resolved one (configs stored by older runs may say 'auto',
        # which would need torch just to find the device again).
        pinned = fg.info.get("embedder_dtype") or stored.embedder.dtype
        config = config.model_copy(update={"embedder": config.embedder.model_copy(update={"dtype": pinned})})
    embedder = embedder or load_embedder(config.embedder, fg.store.home)
    return config, embedder


def _check_compatible(fg, config: FeatureConfig, embedder, chunker) -> None:
    info = fg.info
    nxt = f"--version {max(fg.store.versions(fg.name)) + 1}"
    if info["kind"] != config.kind:
        raise IncompatibleError(f"{fg.key} holds {info['kind']}, not {config.kind}; create a new version with {nxt}")
    if info["embedder_fingerprint"] != embedder.fingerprint:
        raise IncompatibleError(
            f"{fg.key} was written with embedder {info['embedder_id']} ({info['embedder_dtype']}, fingerprint "
            f"{info['embedder_fingerprint'][:16]}); this run's embedder is {embedder.id} ({embedder.dtype}, fingerprint "
            f"{embedder.fingerprint[:16]}). Vectors from two embedders cannot share a version: create {nxt}."
        )
    if info["chunker_fingerprint"] != chunker.fingerprint:
        raise IncompatibleError(
            f"{fg.key} was chunked with {info['chunker']} (fingerprint {info['chunker_fingerprint'][:12]}); this run's "
            f"chunker is {config.chunker.model_dump_json()} (fingerprint {chunker.fingerprint[:12]}). Create {nxt}."
        )


def _register(fg, config: FeatureConfig, embedder, chunker) -> None:
    embedder.fingerprint  # resolves the dtype ('auto' -> the device's), which is what gets pinned
    pinned = config.model_copy(update={"embedder": config.embedder.model_copy(update={"dtype": embedder.dtype})})
    fg.store.register_meta(
        {
            "key": fg.key, "name": fg.name, "version": fg.version, "kind": config.kind, "table_name": fg.table_name,
            "embedder_id": embedder.id, "embedder_fingerprint": embedder.fingerprint, "embedder_dtype": embedder.dtype,
            "dimension": embedder.dimension, "chunker": config.chunker.model_dump_json(),
            "chunker_fingerprint": chunker.fingerprint, "config": pinned.model_dump_json(),
            "description": config.description, "created_at": utcnow(),
        }
    )
    fg._info = None


def doc_hash(doc: SourceDocument, text: str) -> str:
    # A file's mtime is not content: touching a file must not re-embed it. An explicit date is content.
    explicit = doc.event_time.isoformat() if doc.event_time_explicit else ""
    return sha256_text(text, json.dumps(doc.metadata, sort_keys=True, default=str), explicit, json.dumps(doc.fields, sort_keys=True))


def _chunk_rows(docs: list[tuple[SourceDocument, str, str]], chunker, kind: str, run_id: str, ingested_at: datetime) -> tuple[list[dict], list[str]]:
    rows, embed_texts = [], []
    for doc, text, dhash in docs:
        chunks = chunker.chunk(text) if kind == "documents" else None
        if kind in WHOLE_KINDS:
            from llmfti.transforms.model_independent.chunk import Chunk

            chunks = [Chunk(text, [], 0, 0)]
        seen: dict[str, int] = {}
        for chunk in chunks:
            n = seen[chunk.text] = seen.get(chunk.text, -1) + 1
            # Repeated identical chunks in one document get an occurrence suffix so ids stay unique.
            chunk_id = sha256_text(doc.doc_id, chunk.text, chunker.fingerprint, str(n) if n else "")[:32]
            row = {
                "chunk_id": chunk_id, "doc_id": doc.doc_id, "source": doc.source, "chunk_index": chunk.index,
                "heading_path": " > ".join(chunk.heading_path), "text": chunk.text, "doc_hash": dhash,
                "event_time": doc.event_time, "ingested_at": ingested_at,
                "metadata": json.dumps(doc.metadata, sort_keys=True, default=str), "run_id": run_id,
            }
            if kind in WHOLE_KINDS:
                row.update(doc.fields)
            rows.append(row)
            embed_texts.append(chunk.embed_text)
    return rows, embed_texts


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled, transient=False,
    )


ENGINES = ("local", "ray")


def ingest(fg, paths: list[str], *, config: FeatureConfig | None = None, sync: bool = False, progress: bool = False,
           embedder=None, home=None, version: int | None = None, engine: str = "local", ray_address: str | None = None) -> IngestSummary:
    """Ingest files, directories or globs into feature group `fg`: a FeatureGroup handle, or a name
    (`NAME` or `NAME:VERSION`) in `home`, created on first ingest. One atomic commit at most.
    `engine="ray"` embeds on Ray Data (a local Ray, or the cluster at `ray_address`)."""
    return ingest_items(fg, lambda cfg: load_sources(paths, max_file_bytes=cfg.max_file_bytes, kind=cfg.kind), config=config,
                        sync=sync, progress=progress, embedder=embedder, home=home, version=version, engine=engine, ray_address=ray_address)


def ingest_items(fg, items_for: Callable[[FeatureConfig], Iterable[SourceDocument | QuarantineItem]], *, config: FeatureConfig | None = None,
                 sync: bool = False, progress: bool = False, embedder=None, home=None, version: int | None = None,
                 lineage: dict | None = None, deletes: Iterable[str] = (), commit_properties: dict[str, str] | None = None,
                 engine: str = "local", ray_address: str | None = None) -> IngestSummary:
    """The pipeline behind `ingest`, for items a caller produces (the records-synthesis pipeline writes
    its records this way): `items_for(config)` yields documents and quarantine items. `lineage`
    (where the items came from) is stored with the run and shown by `fg show` and `fg history`.
    `deletes` are doc ids to remove in the same commit (a watched folder's removed files, a stream's
    tombstones); `commit_properties` are stored in the data commit itself (a stream's offsets).
    The embedder's weights load only when something is embedded: a run that changes nothing never
    loads them."""
    if engine not in ENGINES:
        from llmfti.errors import ConfigError

        raise ConfigError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if isinstance(fg, str):
        from llmfti.store import FeatureStore

        fg = FeatureStore(home).feature_group(fg, version, must_exist=False)
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:16]
    ingested_at = utcnow()
    summary = IngestSummary(feature_group=fg.key, run_id=run_id, lineage=lineage)
    config, embedder = resolve_config(fg, config, embedder)
    chunker = get_chunker(config.chunker.name)(config.chunker, embedder.token_offsets, embedder.tokenizer_fingerprint)
    if fg.info is not None:
        _check_compatible(fg, config, embedder, chunker)

    from llmfti.store.source_keys import SourceKeys, raw_key

    docs: list[tuple[SourceDocument, str | None, str]] = []
    quarantined: list[QuarantineItem] = []
    source_keys = SourceKeys(fg)
    cached = source_keys.load() if fg.has_data() else {}
    keys: dict[str, tuple[str, str]] = {}
    for item in items_for(config):
        if isinstance(item, QuarantineItem):
            quarantined.append(item)
            continue
        key = raw_key(item)
        hit = cached.get(item.doc_id)
        if hit is not None and hit[0] == key:
            # Same raw input as when the cache was written: its doc hash is known without cleaning. The
            # text is cleaned below only if the table disagrees (then the document counts as changed).
            docs.append((item, None, hit[1]))
            keys[item.doc_id] = hit
            continue
        text = clean_text(item.text)
        if not text.strip():
            quarantined.append(QuarantineItem(item.path or item.source, "empty", "no text after cleaning", doc_id=item.doc_id, file=item.file))
            continue
        docs.append((item, text, doc_hash(item, text)))
        keys[item.doc_id] = (key, docs[-1][2])
    summary.documents["seen"] = len(docs) + len(quarantined)
    summary.documents["quarantined"] = len(quarantined)
    summary.quarantine = [{"source": q.source, "reason": q.reason, "detail": q.detail} for q in quarantined]

    # From the source keys without opening the table when their vouched state holds and nothing can change.
    existing, chunks_per_doc, vouched, scanned_at = known_documents(fg, source_keys, cached, docs, quarantined, sync=sync, deletes=deletes,
                                                                    index_threshold=config.index_threshold)
    changed = [d for d in docs if existing.get(d[0].doc_id) != d[2]]
    # A cached key whose doc hash the table does not hold (the cache is stale): clean and hash for real.
    for i, (item, text, _) in enumerate(changed):
        if text is None:
            text = clean_text(item.text)
            changed[i] = (item, text, doc_hash(item, text))
            keys[item.doc_id] = (keys[item.doc_id][0], changed[i][2])
    changed = [d for d in changed if existing.get(d[0].doc_id) != d[2]]
    summary.documents["added"] = sum(1 for d in changed if d[0].doc_id not in existing)
    summary.documents["updated"] = len(changed) - summary.documents["added"]
    summary.documents["unchanged"] = len(docs) - len(changed)
    deleted: list[str] = []
    if sync:
        present = {d[0].doc_id for d in docs}
        # A document that is quarantined this run keeps its last good chunks: nothing is lost to bad input.
        protected = protected_doc_ids(fg, quarantined, existing)
        deleted = sorted(doc_id for doc_id in existing if doc_id not in present and doc_id not in protected)
        summary.documents["deleted"] = len(deleted)
    if deletes:
        present = {d[0].doc_id for d in docs}
        keep = protected_doc_ids(fg, quarantined, existing)  # as with sync: bad input never deletes what it would replace
        deleted = sorted(set(deleted) | {d for d in deletes if d in existing and d not in present and d not in keep})
        summary.documents["deleted"] = len(deleted)

    if fg.info is None:
        _register(fg, config, embedder, chunker)
        # First writer wins (merge-insert); a run that lost the race must match the winner's settings.
        _check_compatible(fg, config, embedder, chunker)
    write_quarantine(fg, run_id, quarantined)

    replaced = [d[0].doc_id for d in changed if d[0].doc_id in existing] + deleted
    summary.chunks_deleted = sum(chunks_per_doc.get(d, 0) for d in replaced)
    if engine == "ray":  # chunk, embed and write on Ray Data; one commit, as below
        from llmfti.pipelines import ray_engine

        written, summary.committed, summary.scoring = ray_engine.run(
            fg, changed, replaced, config=config, chunker=chunker, embedder=embedder, run_id=run_id, ingested_at=ingested_at,
            chunk_rows=_chunk_rows, score_records=score_new_records, lineage=lineage, properties=commit_properties,
            address=ray_address, progress=progress)
    else:
        rows, texts = _chunk_rows(changed, chunker, config.kind, run_id, ingested_at)
        if rows:
            with _progress(progress) as bar:
                task = bar.add_task(f"embedding {fg.key}", total=len(texts), rate="")
                t0 = time.perf_counter()

                def advance(n):
                    bar.update(task, advance=n, rate=f"{bar.tasks[0].completed / max(time.perf_counter() - t0, 1e-9):.0f} chunks/s")

                vectors = embedder.embed(texts, batch_size=config.embedder.batch_size, progress=advance)
            for row, vec in zip(rows, vectors):
                row["vector"] = vec
        if config.kind == "records" and rows:
            summary.scoring = score_new_records(fg, config, rows, replaced, lineage)  # the scoring hook: same commit
        summary.committed = commit_rows(fg, rows, replaced, config.kind, embedder.dimension, commit_properties)
        written = len(rows)
    # A batch that changes nothing (every message bad, or re-delivered unchanged) still moved past its
    # messages: its properties (a stream's offsets) go into an offsets-only run record instead.
    summary.properties = dict(commit_properties) if commit_properties else None
    summary.chunks_written = written if summary.committed else 0
    if summary.committed:
        summary.data_commit = fg.table().version
    vouched = vouched if vouched and vouched.get("indexes_current") and not summary.committed else None
    if vouched:
        summary.commit = vouched["version"]  # the commit the state was vouched at, its indices current then
    elif fg.has_data():
        from llmfti.store.indexing import ensure_indexes, indexes_current

        # A run that committed nothing still finishes index work a killed run left undone; when there is
        # none (the manifest says so), it never connects to LanceDB: a no-op re-ingest costs no
        # `import lancedb` (~1 s of a ~2 s cold start on 2 cores).
        unchanged = None if summary.committed else fg.dataset()
        if unchanged is not None and indexes_current(unchanged, config.index_threshold):
            summary.commit = unchanged.version
            # This run's scan was of this commit if the listing did not move since: vouch from it, free.
            vouched = vouched_by_scan(fg, scanned_at, summary.commit, existing, config.index_threshold)
        else:
            ensure_indexes(fg.table(), config.index_threshold)
            summary.commit = fg.table().version
    if fg.has_data():
        # Documents not read this run (a watched folder's batch, a stream) keep their keys; deleted ones go.
        gone = set(deleted)
        merged = {d: k for d, k in cached.items() if d not in gone} | keys
        rows_now = sum(chunks_per_doc.values()) - summary.chunks_deleted + summary.chunks_written
        state = state_after_run(fg, vouched, merged, committed=summary.committed, rows_now=rows_now, threshold=config.index_threshold)
        if merged != cached or state != source_keys.state:
            source_keys.save(merged, state)
    summary.duration_s = round(time.perf_counter() - started, 3)
    if summary.committed or commit_properties:
        record_run(fg, summary, ingested_at)
    return summary


def record_run(fg, summary: IngestSummary, started_at: datetime) -> None:
    row = {"run_id": summary.run_id, "feature_group": fg.key, "commit": summary.commit, "started_at": started_at, "finished_at": utcnow(), "summary": json.dumps(summary.to_dict(), default=str)}
    fg.store.system_table(RUNS).add(row)
