"""Query drift: is a window of served query vectors distributed like a baseline?

    mmd_test(baseline, current)                 # {"mmd2", "p_value", "bandwidth", "permutations", ...}
    domain_classifier_auc(baseline, current)    # {"auc", "folds", "components"}: 0.5 = indistinguishable
    length_shift(baseline_lengths, current_lengths)
    pooled_pca(baseline, current)               # 2-D coordinates for a plot

The two main signals are a kernel two-sample test and a domain classifier, both on the vectors as
served (no labels needed). Any PCA is fitted on BOTH windows: fitted on the reference alone it turns
directions that only the new window uses into noise-free axes, and a quick trial gave 85 % false
drift on a control window. Callers sample each window to a bounded size (the monitoring pipeline:
2,000 vectors), which keeps the O(n^2) kernel matrix small.
"""

from __future__ import annotations

import numpy as np


def one_thread():
    """Run BLAS/OpenMP code on one thread. The matrices here are small to medium and the cores are
    shared: OpenBLAS threads spin-waiting on each other made a 120 x 64 SVD 20x slower (17 ms instead
    of 0.7), k-means on 2,000 vectors 10x slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _pooled(x, y) -> tuple[np.ndarray, int, int]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"two windows of vectors of one dimension are needed, got shapes {x.shape} and {y.shape}")
    return np.vstack([x, y]), len(x), len(y)


def _sq_distances(z: np.ndarray) -> np.ndarray:
    """Pairwise squared distances, float32 (4,000 vectors: a 64 MB matrix), computed in place."""
    z = z.astype(np.float32)
    sq = np.einsum("ij,ij->i", z, z)
    d = z @ z.T
    d *= -2.0
    d += sq[:, None]
    d += sq[None, :]
    np.maximum(d, 0.0, out=d)  # rounding can make a distance slightly negative
    np.fill_diagonal(d, 0.0)
    return d


def _off_diagonal_median(d: np.ndarray) -> float:
    """Median of the off-diagonal entries of a distance matrix, without building an index of them:
    the N diagonal zeros sort first, so it is the entry of rank N + (N^2 - N) / 2 of the whole matrix."""
    n = len(d)
    rank = n + (n * n - n) // 2
    return float(np.partition(d.ravel(), rank)[rank])


def mmd_test(x, y, *, permutations: int = 200, seed: int = 0, bandwidth: float | None = None) -> dict:
    """Kernel two-sample test: MMD^2 with an RBF kernel k(a, b) = exp(-|a-b|^2 / h), h the median
    squared distance of the pooled sample (a function of the pooled sample only, so the permutation
    test stays exact), and a permutation p-value (1 + #{perm >= observed}) / (1 + permutations).

    Fast: the kernel matrix is computed once (float32), and MMD^2 of a labelling is w' K w with
    w = 1/n on one window and -1/m on the other, so all permutations are ONE matrix product K @ W
    (the biased V-statistic: its diagonal term 1/n + 1/m is the same for every permutation, so the
    p-value is that of the usual statistic). 2,000 + 2,000 vectors and 200 permutations: ~1 s on two
    cores. `mmd2_unbiased` is the usual unbiased estimate, for reading the size of a shift."""
    z, n, m = _pooled(x, y)
    if n < 2 or m < 2:
        raise ValueError(f"each window needs at least 2 vectors (got {n} and {m})")
    with one_thread():
        k = _sq_distances(z)
        if bandwidth is None:
            bandwidth = _off_diagonal_median(k)
            if bandwidth <= 0:  # all vectors identical: any positive width gives MMD 0
                bandwidth = 1.0
        k *= np.float32(-1.0 / bandwidth)
        np.exp(k, out=k)
        w = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(np.float32)
        observed = float(w @ k @ w)
        p_value = None
        if permutations > 0:  # 0: only the statistic (e.g. how far a corpus moved, not a test)
            rng = np.random.default_rng(seed)
            ws = np.stack([rng.permutation(w) for _ in range(permutations)], axis=1)  # (n+m, P)
            null = np.einsum("ij,ij->j", ws, k @ ws)
            # float32 sums of equal statistics may differ in the last bits: compare with a tolerance.
            exceed = int(np.sum(null >= observed - 1e-6 * max(1e-3, abs(observed))))
            p_value = (1 + exceed) / (1 + permutations)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    unbiased = float((kxx.sum(dtype=np.float64) - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum(dtype=np.float64) - np.trace(kyy)) / (m * (m - 1))
                     - 2.0 * kxy.mean(dtype=np.float64))
    return {
        "mmd2": observed, "mmd2_unbiased": unbiased, "p_value": p_value,
        "bandwidth": bandwidth, "permutations": permutations, "n_baseline": n, "n_current": m,
    }


def domain_classifier_auc(x, y, *, folds: int = 5, seed: int = 0, max_components: int = 50) -> dict:
    """Cross-validated ROC AUC of a linear classifier telling the current window from the baseline:
    0.5 when they are indistinguishable, near 1 when some direction separates them.

    The classifier is scikit-learn's RidgeClassifier (regularised least squares, closed form): on
    hash-embedded synthetic windows it gave the same AUCs as a logistic regression, null and shifted,
    about 5x faster. Vectors are first projected on at most `max_components` principal components
    fitted on both windows (unsupervised, labels never seen, so held-out folds stay honest).
    `se_null` is the standard error of an AUC when the windows do not differ (Mann-Whitney,
    sqrt((n + m + 1) / 12nm)): with small windows an AUC of 0.75 can happen by chance, so the alert
    uses a lower bound, not the AUC alone."""
    from sklearn import config_context
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    z, n, m = _pooled(x, y)
    if not np.isfinite(z).all():
        raise ValueError("query vectors must be finite")
    folds = min(folds, n, m)
    if folds < 2:
        raise ValueError(f"each window needs at least 2 vectors (got {n} and {m})")
    labels = np.concatenate([np.zeros(n, dtype=int), np.ones(m, dtype=int)])
    components = min(max_components, z.shape[1], len(z) - 1)
    scores = np.empty(len(z))
    # The inputs are checked above, so scikit-learn's per-call validation (most of the time at this
    # size) is skipped.
    with one_thread(), config_context(assume_finite=True, skip_parameter_validation=True):
        if components < z.shape[1]:
            z = PCA(n_components=components, random_state=seed).fit_transform(z)
        for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(z, labels):
            scores[test] = RidgeClassifier(alpha=1.0).fit(z[train], labels[train]).decision_function(z[test])
    return {"auc": float(roc_auc_score(labels, scores)), "se_null": float(np.sqrt((n + m + 1) / (12.0 * n * m))),
            "folds": folds, "components": int(z.shape[1]), "classifier": "ridge"}


def length_shift(baseline_lengths, current_lengths) -> dict:
    """Query length (words) shift: means, medians, relative change of the mean, and a two-sample
    Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    a = np.asarray(baseline_lengths, dtype=float)
    b = np.asarray(current_lengths, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("query length shift needs lengths in both windows")
    ks = ks_2samp(a, b)
    base = float(a.mean())
    return {
        "baseline_mean": base, "current_mean": float(b.mean()), "baseline_median": float(np.median(a)), "current_median": float(np.median(b)),
        "relative_change": (float(b.mean()) - base) / base if base else None,
        "ks_statistic": float(ks.statistic), "p_value": float(ks.pvalue),
    }


def pooled_pca(x, y, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of both windows on principal components fitted on both (for a scatter plot)."""
    from sklearn.decomposition import PCA

    z, n, _ = _pooled(x, y)
    if len(z) < 3 or z.shape[1] < 2:
        return np.zeros((n, 2)), np.zeros((len(z) - n, 2))
    with one_thread():
        coords = PCA(n_components=2, random_state=seed).fit_transform(z)
    return coords[:n], coords[n:]


def query_lengths(questions) -> np.ndarray:
    """Words per question (whitespace-separated)."""
    return np.array([len(str(q).split()) for q in questions], dtype=float)
