"""What a feature group's table holds, as the feature pipeline needs to know it before and after a run:
the stored documents with their doc hashes, the documents `--sync` must keep, and the *vouched state*
that lets a run which changes nothing skip reading the table altogether.

The vouched state (stored with the source keys, `llmfti.store.source_keys`) is the signature
(`llmfti.table_state`) of a commit at which the keys' doc hashes were checked to be exactly the table's
documents. While the table still has that signature, the keys ARE the stored documents: a run whose
inputs all hit the keys knows it has nothing to do without opening Lance. Any commit since, by anyone,
changes the signature, and the run scans as before.

Used by `llmfti.pipelines.feature.ingest_items`.
"""

from __future__ import annotations

from llmfti.sources.loaders import QuarantineItem

# A committing run vouches for the new commit with a scan of two columns (~15 ms per 100k chunks); above
# this size it leaves that to the next run that changes nothing, which scans anyway (a 1 % re-ingest of
# 100k chunks takes ~0.5 s, and its budget is 3 % of a full ingest).
VOUCH_SCAN_MAX_ROWS = 50_000


def known_documents(fg, source_keys, cached: dict[str, tuple[str, str]], docs: list, quarantined: list[QuarantineItem], *,
                    sync: bool, deletes, index_threshold: int) -> tuple[dict[str, str], dict[str, int], dict | None, str | None]:
    """The stored documents for this run: (doc hashes, chunk counts, vouched state, signature scanned at).

    From the source keys (`cached`, chunk counts unknown) when their vouched state still holds and the run
    can change nothing: every input (`docs`, as (item, cleaned text or None on a key hit, doc hash)) hits
    its key, nothing was quarantined or asked to be deleted, and with `sync` no stored document is missing
    from the inputs. Otherwise from a scan, with the table's signature just before it (None without one)."""
    vouched = source_keys.vouched(fg.store.home, fg.table_name) if cached and not fg.store.connected else None
    if vouched and vouched.get("index_threshold") != index_threshold:
        vouched = None  # its indices were judged current for another threshold (a --set index_threshold=N run)
    present = {d[0].doc_id for d in docs}
    if vouched and not quarantined and not deletes and all(text is None for _, text, _ in docs) and (not sync or present >= cached.keys()):
        return {d: h for d, (_, h) in cached.items()}, {}, vouched, None
    from llmfti.table_state import table_signature

    scanned_at = table_signature(fg.store.home, fg.table_name)  # what the scan below sees, unless a commit lands
    return *stored_docs(fg), None, scanned_at


def stored_docs(fg) -> tuple[dict[str, str], dict[str, int]]:
    """Per stored document, its doc hash and its number of chunks, from one scan of two columns."""
    if not fg.has_data():
        return {}, {}
    return doc_hashes(fg.dataset())


def doc_hashes(ds) -> tuple[dict[str, str], dict[str, int]]:
    # Through pylance in one call: lancedb's query streams the scan in ~100 round trips to its event
    # loop (measured at 100k chunks: 35-50 ms against 13-18 ms; a re-ingest's whole budget is ~0.5 s),
    # and opened without a LanceDB connection, which a run that changes nothing never makes.
    arrow = ds.to_table(columns=["doc_id", "doc_hash"])
    # One row per chunk: reduce to one per document in Arrow before making Python objects (10x fewer).
    per_doc = arrow.group_by("doc_id").aggregate([("doc_hash", "max"), ([], "count_all")])
    ids = per_doc.column("doc_id").to_pylist()
    return dict(zip(ids, per_doc.column("doc_hash_max").to_pylist())), dict(zip(ids, per_doc.column("count_all").to_pylist()))


def vouched_by_scan(fg, scanned_at: str | None, version: int, existing: dict[str, str], threshold: int) -> dict | None:
    """The state a run that committed nothing (its indices current) can vouch for from the scan it made:
    the table's signature was `scanned_at` before the scan and still is, so the scan read exactly that
    commit. `state_after_run` checks `documents` against the source keys."""
    from llmfti.table_state import table_signature

    if scanned_at is None or table_signature(fg.store.home, fg.table_name) != scanned_at:
        return None
    return {"signature": scanned_at, "version": version, "indexes_current": True, "index_threshold": threshold, "documents": existing}


def state_after_run(fg, vouched: dict | None, keys: dict[str, tuple[str, str]], *, committed: bool, rows_now: int, threshold: int) -> dict | None:
    """The vouched state to store with the run's source keys `keys`: the one this run holds (from the
    keys, or from its own scan, if the documents it saw are the keys'), else, after a commit on a table of
    at most VOUCH_SCAN_MAX_ROWS rows, a fresh `vouch`; else None (the next no-op scans and vouches)."""
    scanned = vouched.pop("documents", None) if vouched else None
    if scanned is not None and scanned != {d: h for d, (_, h) in keys.items()}:
        vouched = None  # the table holds documents the keys do not (or other hashes): nothing to vouch for
    if vouched is None and committed and rows_now <= VOUCH_SCAN_MAX_ROWS:
        vouched = vouch(fg, keys, threshold)
    return vouched


def vouch(fg, keys: dict[str, tuple[str, str]], threshold: int) -> dict | None:
    """The signature of the table's latest commit, if at exactly that commit the table's documents and doc
    hashes are the keys' ones (checked by a scan bracketed by two signatures, so a concurrent writer's
    commit is never vouched for), with its version and whether its indices are current; else None."""
    from llmfti.store.indexing import indexes_current
    from llmfti.table_state import consistent_read

    def read(ds):
        return None if ds is None else (ds.version, doc_hashes(ds)[0], indexes_current(ds, threshold))

    found, signature = consistent_read(fg.store.home, fg.table_name, read)
    if found is None or signature is None or found[1] != {d: h for d, (_, h) in keys.items()}:
        return None
    return {"signature": signature, "version": found[0], "indexes_current": found[2], "index_threshold": threshold}


def protected_doc_ids(fg, quarantined: list[QuarantineItem], existing: dict[str, str]) -> set[str]:
    """Stored doc ids that --sync must keep because this run could not read what would replace them:
    quarantined documents (by id), every record of a JSONL file with any quarantined line (a bad line's
    id is unknown), and everything under an unreadable directory. Matched in Python on relative ids and
    sources, so `_` or `%` in a file name are plain characters and the working directory does not matter."""
    protected = {q.doc_id for q in quarantined if q.doc_id}
    files = {q.file for q in quarantined if q.file is not None}
    prefixes = {q.prefix for q in quarantined if q.prefix is not None}
    if not (files or prefixes) or not existing:
        return protected
    id_scopes = tuple(prefixes) + tuple(f + "#" for f in files)  # hash ids of records are "<file>#<hash>"
    source_scopes = tuple(prefixes) + tuple(f + ":" for f in files)  # record sources are "<file>:<line>"
    protected |= {d for d in existing if d.startswith(id_scopes)}
    for doc_id, source in stored_sources(fg):
        if _within(source, source_scopes):
            protected.add(doc_id)
    return protected


def stored_sources(fg) -> set[tuple[str, str]]:
    arrow = fg.table().search().select(["doc_id", "source"]).limit(None).to_arrow()
    return set(zip(arrow.column("doc_id").to_pylist(), arrow.column("source").to_pylist()))


def _within(source: str, scopes: tuple[str, ...]) -> bool:
    """Whether a stored source lies in one of `scopes` (paths relative to the ingest root). Rows written
    before sources were stored relative hold the path as given then, which ends with the relative path:
    matching that too may keep a row too many, never deletes one too many."""
    return source.startswith(scopes) or any("/" + scope in source for scope in scopes)
