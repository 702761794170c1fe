"""Search a feature group at a pinned commit: vector (cosine), or hybrid (vector + full text, fused
by `llmfti.store.fusion`).

Results carry chunk_id, doc_id, source, heading_path, score, text, event_time and the commit read.
`score` is higher-is-better: for vector search the cosine similarity; for hybrid search the fused
score (by default the cosine similarity plus at most `fusion.DEFAULT_FUSION.text_weight` for the
chunk's full-text match; see llmfti.store.fusion), so hybrid and vector scores are not comparable.
"""

from __future__ import annotations

from llmfti.errors import ConfigError
from llmfti.store.fusion import DEFAULT_FUSION, Fusion, fuse

# Only what results carry: every selected column is one more random read per hit after the ANN query.
RESULT_COLUMNS = ["chunk_id", "doc_id", "source", "heading_path", "text"]
# Tuned with bench/vector_index_trials.py at 1M rows on 2 cores against the IVF_SQ index of
# llmfti.store.indexing (~sqrt(n) partitions): recall@10 ~0.98 vs exact search, ANN p50 ~7.4 ms.
# IVF_SQ compares int8 codes, so a refine pass re-ranks REFINE_FACTOR x k candidates on their full
# vectors (recall 0.953 -> 0.974 at 24 probes; scores stay exact cosines). A flat search (no index
# yet) and an older IVF_FLAT index ignore or do not need it.
NPROBES = 32
REFINE_FACTOR: int | None = 2


def query_table(table, vector, query_text: str, k: int, *, hybrid: bool = False, where: str | None = None, columns: list[str] = RESULT_COLUMNS,
                fusion: Fusion = DEFAULT_FUSION) -> list[dict]:
    """Top-k rows of a (pinned) table for a query vector, best first, each with a `score`.
    Shared by `llmfti fg search` and the online agent, so both rank exactly alike."""
    if hybrid:
        n = max(k, fusion.candidates)
        rows = fuse(vector_candidates(table, vector, n, where=where, columns=columns),
                    text_candidates(table, query_text, vector, n, where=where, columns=columns), k, fusion)
        return [{key: v for key, v in r.items() if not key.startswith("_")} for r in rows]
    rows = vector_candidates(table, vector, k, where=where, columns=columns)
    for row in rows:
        row["score"] = round(row.pop("_cosine"), 6)
    return rows


def vector_candidates(table, vector, n: int, *, where: str | None = None, columns: list[str] = RESULT_COLUMNS) -> list[dict]:
    """The n nearest rows by cosine, best first, each with `_cosine` (similarity)."""
    # Set unconditionally: a flat search (no index yet) ignores nprobes and refine_factor (lancedb
    # 0.40), and asking list_indices() first is one more round trip to lancedb's loop per query.
    builder = table.search(vector).distance_type("cosine").nprobes(NPROBES)
    if REFINE_FACTOR:
        builder = builder.refine_factor(REFINE_FACTOR)
    rows = _run(builder, where, list(columns) + ["_distance"], n)
    for row in rows:
        row["_cosine"] = 1.0 - float(row.pop("_distance"))
    return rows


def text_candidates(table, query_text: str, vector, n: int, *, where: str | None = None, columns: list[str] = RESULT_COLUMNS) -> list[dict]:
    """The n best full-text (BM25) matches of `query_text`, best first, each with `_score` (BM25)
    and `_cosine` to `vector`, so a fusion can weigh them on the vector's scale too. A query made
    only of stop words matches nothing (an empty list)."""
    import numpy as np

    if not query_text or not query_text.strip():
        return []
    rows = _run(table.search(query_text, query_type="fts"), where, list(columns) + ["vector"], n)
    q = np.asarray(vector, dtype=np.float32)
    q = q / (np.linalg.norm(q) or 1.0)
    for row in rows:
        v = np.asarray(row.pop("vector"), dtype=np.float32)
        row["_cosine"] = float(v @ q / (np.linalg.norm(v) or 1.0))
        row["_score"] = float(row["_score"])
    return rows


def _run(builder, where: str | None, columns: list[str], n: int) -> list[dict]:
    if where:
        builder = builder.where(where, prefilter=True)
    try:
        return builder.select(columns).limit(n).to_list()
    except Exception as exc:  # lancedb raises plain errors for bad SQL filters
        if where:
            raise ConfigError(f"invalid filter {where!r}: {exc}") from exc
        raise


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
