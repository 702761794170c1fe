"""THE retrieval of contexts, shared by the online agent and training datasets, so a model is trained
on the contexts it will be served with (no training/serving skew in retrieval either).

    text = query_text(question, features)                 # the normalized question, when computed
    rows = retrieve(table, embedder.embed_query(text), text, k, hybrid=hybrid, where=where)
    contexts = as_contexts(rows)                          # best first, for the prompt encoder

`table` is a feature-group table checked out at the commit being read. The agent embeds the query
itself (to time that stage), then calls `retrieve`; `retrieve_contexts` does both in one call.
"""

from __future__ import annotations

from llmfti.store.search import query_table
from llmfti.transforms.model_dependent import Context

COLUMNS = ["chunk_id", "doc_id", "source", "heading_path", "text"]


def query_text(question: str, features: dict | None = None) -> str:
    """What is embedded and searched: the `normalized_question` on-demand feature when the deployment
    (or the training dataset) computes it, else the question as asked."""
    return (features or {}).get("normalized_question") or question


def retrieve(table, vector, text: str, k: int, *, hybrid: bool = False, where: str | None = None) -> list[dict]:
    """Top-k rows (chunk_id, doc_id, source, heading_path, text, score), best first; k <= 0 reads nothing."""
    if k <= 0:
        return []
    return query_table(table, vector, text, k, hybrid=hybrid, where=where, columns=COLUMNS)


def retrieve_contexts(table, embedder, question: str, k: int, *, hybrid: bool = False, where: str | None = None,
                      features: dict | None = None) -> list[dict]:
    text = query_text(question, features)
    return retrieve(table, embedder.embed_query(text), text, k, hybrid=hybrid, where=where) if k > 0 else []


def as_contexts(rows: list[dict]) -> list[Context]:
    return [Context(chunk_id=r["chunk_id"], text=r["text"], score=r["score"], source=r["source"]) for r in rows]
