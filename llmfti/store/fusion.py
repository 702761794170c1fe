"""Hybrid search fusion: one ranking from a vector ranking and a full-text (BM25) ranking of the same
query, for `query_table(..., hybrid=True)` (so `llmfti fg search --hybrid`, the agent's
`retrieval.hybrid` and training datasets all rank alike).

    rows = fuse(vector_rows, text_rows, k)            # DEFAULT_FUSION
    rows = fuse(vector_rows, text_rows, k, Fusion(method="rrf", rrf_k=60, text_weight=1.0))

Each input row carries `chunk_id` and `_cosine` (cosine similarity to the query vector: computed for
the full-text candidates too); full-text rows also carry `_score` (BM25). The output rows carry
`score`, higher is better.

The default is `linear`: score = cosine + text_weight x BM25 min-max normalised over the query's
full-text candidates (1 for the best match, 0 for the weakest candidate and for chunks outside
them). Full text can therefore move a chunk only past chunks less than `text_weight` more similar
to the query, and never past a chunk the embedder clearly prefers: on a corpus where the query's
words are everywhere (and questions' stop words are stripped, so "with statement" searches
"statement"), BM25 is noisy, and reciprocal-rank fusion, which sees ranks and not how much better
the vector's first result is, lets that noise displace it. That is how LanceDB's default hybrid
search (RRF, k=60, equal weights) lost to vector search on a held-out corpus.

The setting was chosen by `bench/retrieval_quality.py --tune` on the `python-reference` suite only
(the rule and the grid are in that script; the figures, with the held-out suite, in bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are combined."""

    method: Literal["linear", "rrf"] = "linear"
    # linear: the most BM25 can add to a cosine similarity. rrf: the weight of the full-text ranks.
    text_weight: float = 0.1
    # rrf only: the reciprocal-rank constant (score = 1/(rrf_k + vector rank) + w/(rrf_k + text rank)).
    rrf_k: int = 60
    # linear only: "minmax" over the full-text candidates, or "max" (score / best score).
    normalize: Literal["minmax", "max"] = "minmax"
    # Rows read from each side per query (more when k is larger): the fused top-k for any k up to
    # this is a prefix of the same ranking, so a k=4 deployment sees what the benchmark measured.
    candidates: int = 40

    def __post_init__(self):
        if self.method not in ("linear", "rrf") or self.normalize not in ("minmax", "max"):
            raise ValueError(f"unknown fusion {self}")
        if self.text_weight < 0 or self.rrf_k < 0 or self.candidates < 1:
            raise ValueError(f"fusion parameters out of range: {self}")


DEFAULT_FUSION = Fusion()


def fuse(vector_rows: list[dict], text_rows: list[dict], k: int, fusion: Fusion = DEFAULT_FUSION) -> list[dict]:
    """The top-k of the union of both candidate lists, best first, each row with `score`.
    Ties keep the vector order, then the full-text order (deterministic)."""
    if fusion.method == "rrf":
        scores = _rrf(vector_rows, text_rows, fusion)
    else:
        scores = _linear(vector_rows, text_rows, fusion)
    rows: dict[str, dict] = {}
    for r in list(vector_rows) + list(text_rows):
        rows.setdefault(r["chunk_id"], r)
    order = {cid: i for i, cid in enumerate(rows)}
    best = sorted(rows, key=lambda cid: (-scores[cid], order[cid]))[:k]
    return [{**rows[cid], "score": round(scores[cid], 6)} for cid in best]


def _rrf(vector_rows, text_rows, fusion: Fusion) -> dict[str, float]:
    scores: dict[str, float] = {}
    for weight, ranked in ((1.0, vector_rows), (fusion.text_weight, text_rows)):
        for rank, r in enumerate(ranked, 1):
            scores[r["chunk_id"]] = scores.get(r["chunk_id"], 0.0) + weight / (fusion.rrf_k + rank)
    return scores


def _linear(vector_rows, text_rows, fusion: Fusion) -> dict[str, float]:
    # The vector search's own cosine wins for a chunk both sides returned (the same up to float error).
    scores = {r["chunk_id"]: float(r["_cosine"]) for r in list(text_rows) + list(vector_rows)}
    bm25 = [float(r["_score"]) for r in text_rows]
    if not bm25:
        return scores
    hi = max(bm25)
    lo = min(bm25) if fusion.normalize == "minmax" else 0.0
    for r, s in zip(text_rows, bm25):
        # One candidate (or all equal): each is the best full-text match there is.
        norm = (s - lo) / (hi - lo) if hi > lo else 1.0
        scores[r["chunk_id"]] += fusion.text_weight * norm
    return scores
