"""The feature pipeline's commit path: one run's rows, replaced documents and (optionally) commit
properties land in ONE LanceDB table version; quarantined inputs go to the quarantine table.

`commit_properties(fg, key)` reads back what a run stored in its data commit (a stream's offsets).
Used by `llmfti.pipelines.feature.ingest_items` and the stream pipeline.
"""

from __future__ import annotations

import time

from llmfti.sources.loaders import QuarantineItem
from llmfti.sources.timeparse import utcnow
from llmfti.store.feature_store import QUARANTINE
from llmfti.store.schema import SCORE_PREFIX, feature_group_schema
from llmfti.tables import sql_quote


def write_quarantine(fg, run_id: str, items: list[QuarantineItem]) -> None:
    now = utcnow()
    rows = [{"run_id": run_id, "feature_group": fg.key, "source": q.source, "reason": q.reason, "detail": q.detail, "raw": q.raw, "quarantined_at": now} for q in items]
    fg.store.system_table(QUARANTINE).add(*rows)


def commit_rows(fg, rows: list[dict], replace_doc_ids: list[str], kind: str, dim: int, properties: dict[str, str] | None = None) -> bool:
    """Apply all changes as one table version (with `properties` stored in that same commit). Returns
    whether a commit was made."""
    import pyarrow as pa

    if not rows and not replace_doc_ids:
        return False  # (and before building an empty table: pyarrow imports pandas for that, ~0.2 s)
    schema = feature_group_schema(dim, kind, scores=[c for c in (rows[0] if rows else {}) if c.startswith(SCORE_PREFIX)])
    data = pa.Table.from_pylist(rows, schema=schema)
    if not fg.has_data():
        if not rows:
            return False
        try:
            if properties is None:
                fg.store.db.create_table(fg.table_name, data=data, schema=schema)
                return True
            fg.store.db.create_table(fg.table_name, schema=schema)  # empty; the data and its properties merge in below
        except (ValueError, RuntimeError) as exc:  # "already exists": a concurrent first run created it; merge into it
            # lancedb raises ValueError, or (seen once in ~30 racing runs) a RuntimeError wrapping it when the
            # check fires while its data reader runs.
            if isinstance(exc, RuntimeError) and "already exists" not in str(exc):
                raise
            return _merge_into(_wait_for_table(fg), data, replace_doc_ids, properties)
    # has_data() sees the table's folder, which a concurrent first run creates before its commit lands.
    return _merge_into(_wait_for_table(fg), data, replace_doc_ids, properties)


# How long a run that lost the race to create a table waits for the winner's first commit to land.
CREATE_RACE_WAIT_S = 30.0


def _wait_for_table(fg, timeout_s: float = CREATE_RACE_WAIT_S):
    """The table a concurrent first run is creating: its folder exists before its first commit does,
    so opening it can fail for a moment (seen: "has no data yet" in 1 of ~20 concurrent first ingests,
    both after create_table said "already exists" and when has_data() already saw the folder)."""
    from llmfti.errors import NotFoundError

    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return fg.table()
        except NotFoundError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _merge_into(tbl, data, replace_doc_ids: list[str], properties: dict[str, str] | None) -> bool:
    """Upsert `data` on chunk_id and delete the replaced documents' other rows: one table version (with
    `properties` stored in that same commit, read back by `commit_properties`)."""
    import lance

    scope = "doc_id IN (" + ", ".join(sql_quote(d) for d in replace_doc_ids) + ")"
    if data.num_rows == 0 and properties is None:
        tbl.delete(scope)
        return True
    ds = tbl.to_lance()
    # pylance's merge directly: the same operation through lancedb's wrapper took ~150 ms at 100k rows
    # against ~80 ms here, most of a 1 % re-ingest's commit.
    merge = ds.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
    if replace_doc_ids:
        merge = merge.when_not_matched_by_source_delete(scope)
    # Cast to the table's own types when the columns are the same; rows that lack a column the table
    # has (written by another llmfti version) merge as they are, the column null (tested).
    rows = data.cast(ds.schema) if data.schema.names == ds.schema.names else data
    if properties is None:
        merge.execute(rows)
    else:
        transaction, _ = merge.execute_uncommitted(rows)
        transaction.transaction_properties = {str(k): str(v) for k, v in properties.items()}
        lance.LanceDataset.commit(ds, transaction)
    tbl.checkout_latest()
    return True


def commit_properties(fg, key: str, *, max_versions: int = 10_000) -> tuple[int, str] | None:
    """(commit, value) of the newest data commit whose properties hold `key`, walking back from the
    latest version (index and maintenance versions carry none)."""
    if not fg.has_data():
        return None
    tbl = fg.table()
    ds = tbl.to_lance()
    for version in sorted((int(v["version"]) for v in tbl.list_versions()), reverse=True)[:max_versions]:
        try:
            transaction = ds.read_transaction(version)
        except Exception:  # pruned meanwhile, or written before transactions were kept
            continue
        value = (getattr(transaction, "transaction_properties", None) or {}).get(key) if transaction is not None else None
        if value is not None:
            return version, value
    return None
