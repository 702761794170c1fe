"""Feature-group change between two commits: which documents were added, updated or deleted, and
how far the corpus embedding distribution moved.

    document_changes({"a.md": "h1", "b.md": "h2"}, {"a.md": "h1", "b.md": "h3", "c.md": "h4"})
    # {"added": 1, "updated": 1, "deleted": 0, "unchanged": 1, ...}
    embedding_shift(vectors_before, vectors_after)
    # {"centroid_cosine_distance": 0.01, "mmd2": 0.002, "chunks_changed_share": 0.1, ...}

The two commits share most chunks, so they are not independent samples and a two-sample p-value
would mean nothing here: the shift is reported as distances, not as a test.
"""

from __future__ import annotations

import numpy as np

from llmfti.monitoring.drift import mmd_test

LISTED = 20  # document ids listed per kind of change (the counts are complete)


def document_changes(before: dict[str, str], after: dict[str, str]) -> dict:
    """`before`/`after`: doc_id -> content hash at each commit."""
    added = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    updated = sorted(d for d in set(before) & set(after) if before[d] != after[d])
    return {
        "added": len(added), "updated": len(updated), "deleted": len(deleted), "unchanged": len(set(before) & set(after)) - len(updated),
        "documents_before": len(before), "documents_after": len(after),
        "added_ids": added[:LISTED], "updated_ids": updated[:LISTED], "deleted_ids": deleted[:LISTED],
    }


def embedding_shift(before, after, *, chunks_changed_share: float | None = None, seed: int = 0) -> dict:
    """Cosine distance between the corpus centroids and the kernel MMD^2 between the two chunk
    vector sets (same RBF kernel as the query drift test, no permutations). MMD^2 is the biased
    (V-statistic) estimate here: exactly 0 for identical sets and never negative, where the unbiased
    one is centred on 0 and, on a few chunks, swings below it (-0.3 for two identical 4-chunk sets)."""
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    out = {"chunks_before": int(len(a)), "chunks_after": int(len(b)), "chunks_changed_share": chunks_changed_share,
           "centroid_cosine_distance": None, "mmd2": None}
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        return out
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    denom = float(np.linalg.norm(ca) * np.linalg.norm(cb))
    # Clamped: rounding makes identical centroids -1e-8 apart, which would print as "-0.00000".
    out["centroid_cosine_distance"] = round(max(0.0, 1.0 - float(ca @ cb) / denom), 6) if denom else None
    out["mmd2"] = round(max(0.0, mmd_test(a, b, permutations=0, seed=seed)["mmd2"]), 6)
    return out
