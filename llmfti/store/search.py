"""Search a feature group at a pinned commit: vector (cosine), or hybrid (vector + full text, RRF).

Results carry chunk_id, doc_id, source, heading_path, score, text, event_time and the commit read.
"""

from __future__ import annotations

from llmfti.errors import ConfigError

RESULT_COLUMNS = ["chunk_id", "doc_id", "source", "chunk_index", "heading_path", "text", "event_time", "ingested_at", "metadata"]
# Tuned with bench/retrieval.py at 100k rows on 2 cores against the IVF_FLAT index of
# llmfti.store.indexing (~sqrt(n)/2 partitions): recall@10 ~0.98 vs exact search, ANN p50 ~3 ms.
# IVF_FLAT holds exact vectors, so no refine pass (None); set a factor for a quantized index type.
NPROBES = 24
REFINE_FACTOR: int | None = None


def search(fg, query: str, k: int = 5, *, as_of=None, hybrid: bool = False, where: str | None = None, embedder=None) -> dict:
    if not query or not query.strip():
        raise ConfigError("the search query is empty")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    # Latest needs no commit resolution (listing every version costs ~1 ms per query).
    tbl = fg.table() if as_of is None else fg.as_of(as_of)
    commit = tbl.version
    embedder = embedder or fg.embedder()
    vector = embedder.embed_query(query)
    if hybrid:
        builder = tbl.search(query_type="hybrid").vector(vector).text(query)
    else:
        # Set unconditionally: a flat search (no index yet) ignores nprobes and refine_factor (lancedb
        # 0.40), and asking list_indices() first is one more round trip to lancedb's loop per query.
        builder = tbl.search(vector).distance_type("cosine").nprobes(NPROBES)
        if REFINE_FACTOR:
            builder = builder.refine_factor(REFINE_FACTOR)
    if where:
        builder = builder.where(where, prefilter=True)
    try:
        columns = RESULT_COLUMNS if hybrid else RESULT_COLUMNS + ["_distance"]
        rows = builder.select(columns).limit(k).to_list()
    except Exception as exc:  # lancedb raises plain errors for bad SQL filters
        if where:
            raise ConfigError(f"invalid --where filter {where!r}: {exc}") from exc
        raise
    results = []
    for row in rows:
        score = row.get("_relevance_score") if hybrid else 1.0 - float(row["_distance"])
        results.append(
            {
                "chunk_id": row["chunk_id"], "doc_id": row["doc_id"], "source": row["source"], "chunk_index": row["chunk_index"],
                "heading_path": row["heading_path"], "score": round(float(score), 6), "text": row["text"],
                "event_time": row["event_time"].isoformat() if row["event_time"] else None,
            }
        )
    return {"feature_group": fg.key, "commit": commit, "query": query, "k": k, "hybrid": hybrid, "results": results}
