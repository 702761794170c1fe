"""Search a feature group at a pinned commit: vector (cosine), or hybrid (vector + full text, RRF).

Results carry chunk_id, doc_id, source, heading_path, score, text, event_time and the commit read.
"""

from __future__ import annotations

from llmfti.errors import ConfigError

RESULT_COLUMNS = ["chunk_id", "doc_id", "source", "chunk_index", "heading_path", "text", "event_time", "ingested_at", "metadata"]
NPROBES = 20
REFINE_FACTOR = 5


def search(fg, query: str, k: int = 5, *, as_of=None, hybrid: bool = False, where: str | None = None, embedder=None) -> dict:
    from llmfti.store.indexing import has_vector_index

    if not query or not query.strip():
        raise ConfigError("the search query is empty")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    tbl = fg.as_of(as_of)
    commit = tbl.version
    embedder = embedder or fg.embedder()
    vector = embedder.embed_query(query)
    if hybrid:
        builder = tbl.search(query_type="hybrid").vector(vector).text(query)
    else:
        builder = tbl.search(vector).distance_type("cosine")
        if has_vector_index(tbl):
            builder = builder.nprobes(NPROBES).refine_factor(REFINE_FACTOR)
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
