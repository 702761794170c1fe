"""The Ray engine of the feature pipeline: `llmfti ingest ... --engine ray [--ray-address auto]`.

The feature pipeline (`llmfti.pipelines.feature.ingest_items`) runs as always up to the point where
it knows what changed: loading, cleaning, validation and quarantine, change detection against the
stored document hashes, --sync deletes, registration of a new version. Those steps read the sources
and the table and decide what a run writes; they run on the driver. Then this module takes over:

    changed documents -> Ray Data: chunk (tasks) -> embed (an actor pool, `map_batches`: each actor
    loads the embedder once) -> write Lance fragments (tasks, `lance_ray.LanceFragmentWriter`)
    -> the driver commits every fragment, and the deletion of replaced documents' chunks, in ONE
    Lance transaction (an `Update`) carrying the run id in its transaction properties.

Workers write data files only; nothing is visible until the driver's commit, so a run killed at any
point leaves the table at its previous commit (its orphaned data files are unreferenced and never
read). A first run creates the empty table before any worker writes, so there is never a table
folder without a manifest. Chunk ids come from the same `_chunk_rows` (passed in by the feature
pipeline: this module never imports it) and vectors from the same embedder object, so both engines
store the same rows; vectors agree within float tolerance (batches differ).

Measured facts this follows: Ray 2.60's built-in `Dataset.write_lance` fails with pylance 14
(ray-project/ray#65129), `lance-ray` 0.5's fragment writer works; a 2-D numpy batch column is stored by
Ray in a form LanceDB does not see as a vector column, so the embed stage returns Arrow with a
fixed-size list of float32; a local Ray binds the machine's routable address unless
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is set before ray is imported, with 127.0.0.1 as node address.
Records with scorers are scored on the driver (scorers compare records with each other), then embedded
and written on Ray like any row.
"""

from __future__ import annotations

import os
import pickle
from datetime import datetime

from llmfti.errors import ConfigError
from llmfti.logs import get_logger
from llmfti.tables import sql_quote

logger = get_logger(__name__)
EMBED_TEXT = "_embed_text"  # the text the embedder reads (a chunk's text with its heading path), dropped before writing
COMMIT_ATTEMPTS = 5  # a concurrent commit that touched the same fragments: recompute the deletions and retry
RUN_ID_PROPERTY = "llmfti.run_id"


def connect(address: str | None = None):
    """The `ray` module, initialised: an existing connection, else `address` ('auto', 'ray://...',
    host:port), else a local Ray on the loopback interface."""
    if address is None:
        # Read by ray when it is imported: without it a local Ray binds the routable address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import lance_ray  # noqa: F401  (checked here: the fragment writer runs on the workers)
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray Data and lance-ray ({exc.name} is not installed)", hint="pip install 'llmfti[ray]'") from None
    if not ray.is_initialized():
        import logging
        import warnings

        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        with warnings.catch_warnings():
            # Ray starts its processes with fork+exec (subprocess), which lance's and lancedb's fork hooks warn
            # about; nothing of theirs runs in the forked child before the exec.
            warnings.filterwarnings("ignore", message=".*(not fork-safe|fork support is experimental).*")
            if address is None:
                ray.init(_node_ip_address="127.0.0.1", **kwargs)
            else:
                ray.init(address=address, **kwargs)
    return ray


def run(fg, changed: list, replaced: list[str], *, config, chunker, embedder, run_id: str, ingested_at: datetime,
        chunk_rows, score_records, lineage: dict | None = None, properties: dict | None = None, address: str | None = None,
        progress: bool = False, embed_actors: int | None = None) -> tuple[int, bool, dict | None]:
    """Chunk, embed and write `changed` on Ray and delete the chunks of `replaced` documents, in one
    commit. Returns (chunks written, whether a commit was made, the records' scoring summary)."""
    if not changed and not replaced:
        return 0, False, None
    props = {RUN_ID_PROPERTY: run_id, **{str(k): str(v) for k, v in (properties or {}).items()}}
    scoring = None
    rows = texts = None
    if config.kind != "documents":  # records are kept whole: their rows are what the driver already holds
        rows, texts = chunk_rows(changed, chunker, config.kind, run_id, ingested_at)
        if config.kind == "records" and rows:
            scoring = score_records(fg, config, rows, replaced, lineage)  # scorers compare records: on the driver
    scores = [c for c in (rows[0] if rows else {}) if c.startswith("score_")]
    tbl = _table(fg, embedder.dimension, config.kind, scores)
    schema = tbl.schema
    fragments = []
    if changed:
        ray = connect(address)
        _quiet_data(ray, progress)
        ds = _source(ray, changed, rows, texts, schema, chunk_rows, chunker, config.kind, run_id, ingested_at)
        fragments = _write_fragments(ray, ds, tbl, schema, embedder, config.embedder.batch_size, embed_actors, fg.store.home)
    committed = _commit_fragments(tbl, fragments, replaced, props)
    written = sum(f.physical_rows for f in fragments) if committed else 0
    return written, committed, scoring


def _quiet_data(ray, progress: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress  # Ray Data's own bars (stderr): per stage, with rows per second
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def _table(fg, dim: int, kind: str, scores: list[str]):
    """The feature group's table, created empty first when this is its first run (before any worker
    writes into its folder: a folder with data files and no manifest would read as a broken table)."""
    from llmfti.store.schema import feature_group_schema

    if not fg.has_data():
        try:
            fg.store.db.create_table(fg.table_name, schema=feature_group_schema(dim, kind, scores=scores))
        except ValueError:  # "already exists": a concurrent first run created it
            pass
    return fg.table()


def _rows_table(rows: list[dict], texts: list[str], schema):
    """Rows without vectors as Arrow (the table's schema minus `vector`) plus the text to embed."""
    import pyarrow as pa

    fields = [f for f in schema if f.name != "vector"]
    data = pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows], schema=pa.schema(fields))
    return data.append_column(EMBED_TEXT, pa.array(texts, pa.string()))


class _Chunk:
    """Ray task: pickled (document, cleaned text, doc hash) triples -> chunk rows (the feature pipeline's
    own `_chunk_rows`, so chunk ids are the local engine's)."""

    def __init__(self, chunk_rows, chunker, kind: str, run_id: str, ingested_at: datetime, schema):
        self.chunk_rows, self.chunker, self.kind, self.run_id, self.ingested_at, self.schema = chunk_rows, chunker, kind, run_id, ingested_at, schema

    def __call__(self, batch):
        docs = [pickle.loads(b) for b in batch.column("doc").to_pylist()]
        rows, texts = self.chunk_rows(docs, self.chunker, self.kind, self.run_id, self.ingested_at)
        return _rows_table(rows, texts, self.schema)


class _Embed:
    """Ray actor (one per pool slot): loads the embedder once, embeds each batch. Returns Arrow with a
    fixed-size list of float32, which LanceDB reads as a vector column (a 2-D numpy column would not)."""

    def __init__(self, embedder, batch_size: int, schema):
        self.embedder, self.batch_size, self.schema = embedder, batch_size, schema
        self.embedder.warm_up()

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        texts = batch.column(EMBED_TEXT).to_pylist()
        dim = self.embedder.dimension
        vectors = np.ascontiguousarray(self.embedder.embed(texts, batch_size=self.batch_size), dtype=np.float32).reshape(len(texts), dim)
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
        out = batch.drop_columns([EMBED_TEXT]).append_column("vector", column)
        return out.select(self.schema.names).cast(self.schema)


def _source(ray, changed, rows, texts, schema, chunk_rows, chunker, kind, run_id, ingested_at):
    """The Ray dataset of rows to embed: documents are chunked on Ray, records arrive as rows."""
    if rows is not None:
        return ray.data.from_arrow(_rows_table(rows, texts, schema))
    import pyarrow as pa

    docs = pa.table({"doc": pa.array([pickle.dumps(d) for d in changed], pa.binary())})
    # A few documents per task: chunking is cheap next to embedding, but spreads over the cluster.
    blocks = max(1, min(len(changed), 4 * int(ray.cluster_resources().get("CPU", 1))))
    return ray.data.from_arrow(docs).repartition(blocks).map_batches(
        _Chunk(chunk_rows, chunker, kind, run_id, ingested_at, schema), batch_format="pyarrow", batch_size=None)


def _write_fragments(ray, ds, tbl, schema, embedder, batch_size: int, embed_actors: int | None, home) -> list:
    """Embed in an actor pool and write Lance fragments from the workers; returns their metadata."""
    from lance_ray import LanceFragmentWriter

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    if gpus:  # one GPU per actor: Ray hides the GPUs from actors that did not ask for one
        actors, per_actor = embed_actors or gpus, {"num_gpus": 1}
    else:  # one CPU stays free for the chunk and write tasks, or an actor pool on a small cluster starves them
        actors, per_actor = embed_actors or max(1, cpus - 1), {}
    uri = tbl.to_lance().uri
    options = dict(home.storage_options) if getattr(home, "remote", False) else None
    embedded = ds.map_batches(_Embed, fn_constructor_args=(embedder, batch_size, schema), batch_format="pyarrow",
                              batch_size=max(batch_size, 64), compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors), **per_actor)
    written = embedded.map_batches(LanceFragmentWriter(uri, schema=schema, storage_options=options, data_storage_version=_storage_version(tbl)),
                                   batch_format="pyarrow", batch_size=None)
    return [pickle.loads(r["fragment"]) for r in written.take_all()]


def _storage_version(tbl) -> str | None:
    """The table's data file format, so new fragments match the ones it has."""
    try:
        return tbl.to_lance().data_storage_version
    except Exception:  # older pylance: let the writer choose
        return None


def _commit_fragments(tbl, fragments: list, replaced: list[str], properties: dict[str, str]) -> bool:
    """ONE Lance transaction: the new fragments, and the replaced documents' rows deleted (deletion
    files on the fragments that hold them). Returns whether anything was committed."""
    import lance
    from lance.commit import CommitConflictError

    scope = "doc_id IN (" + ", ".join(sql_quote(d) for d in replaced) + ")" if replaced else None
    for attempt in range(COMMIT_ATTEMPTS):
        tbl.checkout_latest()
        ds = tbl.to_lance()
        removed, updated = [], []
        if scope:
            hits = ds.to_table(columns=[], filter=scope, with_row_address=True).column("_rowaddr").to_pylist()
            for fragment_id in sorted({addr >> 32 for addr in hits}):
                meta = ds.get_fragment(fragment_id).delete(scope)
                if meta is None:  # every row of it goes
                    removed.append(fragment_id)
                else:
                    updated.append(meta)
        if not fragments and not removed and not updated:
            return False
        operation = lance.LanceOperation.Update(removed_fragment_ids=removed, updated_fragments=updated, new_fragments=list(fragments))
        try:
            lance.LanceDataset.commit(ds, lance.Transaction(ds.version, operation, transaction_properties=properties))
        except CommitConflictError:
            # Another writer changed a fragment we delete from: recompute the deletions on its commit.
            logger.info("ray ingest: commit conflict (attempt %d of %d); retrying on the newest commit", attempt + 1, COMMIT_ATTEMPTS)
            continue
        tbl.checkout_latest()
        return True
    raise CommitConflictError(f"ray ingest: {COMMIT_ATTEMPTS} commit attempts conflicted with concurrent writers; rerun the ingest")
