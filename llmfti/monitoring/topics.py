"""The topics served worst: cluster recent query vectors and rank the clusters by how often their
requests failed or got weak/no context.

    worst_topics(vectors, questions, bad=weak | error, error=error, weak=weak)
    # [{"topic": 3, "size": 41, "bad_share": 0.62, "error_rate": 0.1, "weak_share": 0.55,
    #   "examples": ["...", "...", "..."]}, ...]   worst first

k-means on the (normalised) query vectors; the number of clusters grows with the sample
(about sqrt(n / 2), between 2 and 12). Clusters are ranked by a smoothed bad share,
(bad + 1) / (size + 2), so a cluster of two unlucky queries does not outrank a cluster of fifty
bad ones. Example questions are the ones nearest the cluster centre.
"""

from __future__ import annotations

import numpy as np

from llmfti.monitoring.drift import one_thread


def choose_k(n: int) -> int:
    return int(min(12, max(2, round(np.sqrt(n / 2)))))


def worst_topics(vectors, questions: list[str], *, bad, error, weak, k: int | None = None, top: int = 5, examples: int = 3,
                 seed: int = 0) -> list[dict]:
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n < 4:
        return []
    k = min(k or choose_k(n), n // 2)
    with one_thread():  # k-means on 2,000 x 64 vectors: 1.3 s with two spinning threads, 0.1 s with one
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    bad, error, weak = (np.asarray(a, dtype=bool) for a in (bad, error, weak))
    out = []
    for c in range(k):
        idx = np.flatnonzero(km.labels_ == c)
        if not len(idx):
            continue
        dist = np.linalg.norm(x[idx] - km.cluster_centers_[c], axis=1)
        picked: list[str] = []
        for i in idx[np.argsort(dist)]:
            q = str(questions[i])
            if q not in picked:
                picked.append(q)
            if len(picked) == examples:
                break
        nb = int(bad[idx].sum())
        out.append({
            "topic": int(c), "size": int(len(idx)), "bad": nb, "bad_share": nb / len(idx), "error_rate": float(error[idx].mean()),
            "weak_share": float(weak[idx].mean()), "score": (nb + 1) / (len(idx) + 2), "examples": picked,
        })
    out.sort(key=lambda t: (-t["score"], -t["size"]))
    return out[:top]
