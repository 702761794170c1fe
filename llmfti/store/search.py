"""Search a feature group at a pinned commit: vector (cosine), or hybrid (vector + full text, RRF).

Results carry chunk_id, doc_id, source, heading_path, score, text, event_time and the commit read.
"""

from __future__ import annotations

from llmfti.errors import ConfigError

# Only what results carry: every selected column is one more random read per hit after the ANN query.
RESULT_COLUMNS = ["chunk_id", "doc_id", "source", "heading_path", "text"]
# Tuned with bench/retrieval.py at 100k rows on 2 cores against the IVF_FLAT index of
# llmfti.store.indexing (~sqrt(n)/2 partitions): recall@10 ~0.98 vs exact search, ANN p50 ~3 ms.
# IVF_FLAT holds exact vectors, so no refine pass (None); set a factor for a quantized index type.
NPROBES = 24
REFINE_FACTOR: int | None = None


def query_table(table, vector, query_text: str, k: int, *, hybrid: bool = False, where: str | None = None, columns: list[str] = RESULT_COLUMNS) -> list[dict]:
    """Top-k rows of a (pinned) table for a query vector, best first, each with a `score`.
    Shared by `llmfti fg search` and the online agent, so both rank exactly alike."""
    if hybrid:
        builder = table.search(query_type="hybrid").vector(vector).text(query_text)
    else:
        # Set unconditionally: a flat search (no index yet) ignores nprobes and refine_factor (lancedb
        # 0.40), and asking list_indices() first is one more round trip to lancedb's loop per query.
        builder = table.search(vector).distance_type("cosine").nprobes(NPROBES)
        if REFINE_FACTOR:
            builder = builder.refine_factor(REFINE_FACTOR)
    if where:
        builder = builder.where(where, prefilter=True)
    try:
        rows = builder.select(list(columns) if hybrid else list(columns) + ["_distance"]).limit(k).to_list()
    except Exception as exc:  # lancedb raises plain errors for bad SQL filters
        if where:
            raise ConfigError(f"invalid filter {where!r}: {exc}") from exc
        raise
    for row in rows:
        row["score"] = round(float(row["_relevance_score"]) if hybrid else 1.0 - float(row["_distance"]), 6)
    return rows


def search(fg, query: str, k: int = 5, *, as_of=None, hybrid: bool = False, where: str | None = None, embedder=None) -> dict:
    if not query or not query.strip():
        raise ConfigError("the search query is empty")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    # Latest needs no commit resolution (listing every version costs ~1 ms per query).
    tbl = fg.latest() if as_of is None else fg.as_of(as_of)
    embedder = embedder or fg.embedder()
    rows = query_table(tbl, embedder.embed_query(query), query, k, hybrid=hybrid, where=where)
    results = [
        {
            "chunk_id": r["chunk_id"], "doc_id": r["doc_id"], "source": r["source"],
            "heading_path": r["heading_path"], "score": r["score"], "text": r["text"],
        }
        for r in rows
    ]
    return {"feature_group": fg.key, "commit": tbl.version, "query": query, "k": k, "hybrid": hybrid, "results": results}
