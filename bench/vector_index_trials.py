"""Vector index trials at 1M rows: which LanceDB index type reaches search p50 <= 10 ms with recall@10
>= 0.95 on cold queries, on 2 cores (issue 12's search target)?

The table has bench/growth.py's synthetic distribution (384-d unit vectors around N/40 random topic
centres, cosine ~0.89 to the centre, ~40 rows per centre; the queries are fresh vectors around random
centres, never a stored row or a repeat) and llmfti's result columns (text ~300 characters). Each trial
builds one index on the same table and runs the query the way `llmfti.store.search.vector_candidates`
does (cosine, nprobes, refine factor, the result columns, limit 10). Recall@10 is against exact
search, computed with numpy over all vectors; a hit whose distance ties the exact 10th counts.

    .venv/bin/python bench/vector_index_trials.py --rows 1000000          # ~20 minutes on 2 cores
    .venv/bin/python bench/vector_index_trials.py --rows 50000 --queries 40   # smoke run
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
COLUMNS = ["chunk_id", "doc_id", "source", "heading_path", "text"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def synthetic_vectors(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_centers = max(64, rows // 40)
    centers = rng.standard_normal((n_centers, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((rows, DIM), dtype=np.float32)
    for start in range(0, rows, 100_000):
        stop = min(rows, start + 100_000)
        v = centers[np.arange(start, stop) % n_centers] + rng.standard_normal((stop - start, DIM)).astype(np.float32) * (0.5 / math.sqrt(DIM))
        out[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, centers


def build_table(path: Path, vectors: np.ndarray):
    import lancedb
    import pyarrow as pa

    rnd = random.Random(0)
    db = lancedb.connect(str(path))
    tbl = None
    for start in range(0, len(vectors), 100_000):
        stop = min(len(vectors), start + 100_000)
        n = stop - start
        batch = pa.table({
            "chunk_id": [f"c{i:08d}" for i in range(start, stop)],
            "doc_id": [f"d{i // 10:07d}" for i in range(start, stop)],
            "source": [f"doc{i // 10:07d}.md" for i in range(start, stop)],
            "heading_path": ["Doc"] * n,
            "text": [" ".join(rnd.choices(WORDS, k=44)) for _ in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[start:stop].ravel()), DIM),
        })
        if tbl is None:
            tbl = db.create_table("t", batch)
        else:
            tbl.add(batch)
    return tbl


def trials(rows: int):
    """(label, index config factory, [(nprobes, refine_factor), ...])"""
    from lancedb.index import IvfFlat, IvfHnswSq, IvfPq, IvfRq, IvfSq

    half, full = max(1, int(math.sqrt(rows) / 2)), max(1, int(math.sqrt(rows)))
    return [
        (f"IVF_FLAT, {half} partitions (the old default)", lambda: IvfFlat(distance_type="cosine", num_partitions=half), [(24, None)]),
        (f"IVF_FLAT, {full} partitions", lambda: IvfFlat(distance_type="cosine", num_partitions=full), [(16, None), (24, None), (32, None)]),
        (f"IVF_SQ, {full} partitions", lambda: IvfSq(distance_type="cosine", num_partitions=full), [(24, None), (24, 2), (32, 2)]),
        (f"IVF_PQ, {full} partitions, 48 sub-vectors", lambda: IvfPq(distance_type="cosine", num_partitions=full, num_sub_vectors=48),
         [(24, 5), (24, 10), (32, 10)]),
        (f"IVF_RQ, {full} partitions", lambda: IvfRq(distance_type="cosine", num_partitions=full), [(24, 5), (24, 10), (32, 10)]),
        (f"IVF_HNSW_SQ, {half} partitions", lambda: IvfHnswSq(distance_type="cosine", num_partitions=half), [(8, None), (8, 2), (16, 2)]),
    ]


def measure(tbl, queries: np.ndarray, truth_ids: list[set], kth: np.ndarray, nprobes: int, refine: int | None) -> dict:
    def run(v):
        b = tbl.search(v).distance_type("cosine").nprobes(nprobes)
        if refine:
            b = b.refine_factor(refine)
        return b.select(COLUMNS + ["_distance"]).limit(10).to_list()

    for v in queries[:5]:  # warm the process on queries not measured
        run(v)
    times, recalls = [], []
    for q, v in enumerate(queries[5:], start=5):
        t0 = time.perf_counter()
        res = run(v)
        times.append(time.perf_counter() - t0)
        hits = sum(int(r["chunk_id"][1:]) in truth_ids[q] or r["_distance"] <= kth[q] + 1e-5 for r in res)
        recalls.append(min(1.0, hits / 10))
    t = np.asarray(times) * 1e3
    return {"p50": float(np.percentile(t, 50)), "p95": float(np.percentile(t, 95)), "recall": float(np.mean(recalls)),
            "recall_min": float(np.min(recalls))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200, help="cold queries per setting (5 more warm the process)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated trial numbers (1-based) to run; all by default")
    ap.add_argument("--work", default=None, help="folder for the table (a temporary one by default)")
    args = ap.parse_args(argv)

    import os
    work = Path(args.work or tempfile.mkdtemp(prefix="llmfti-index-trials-"))
    vectors, centers = synthetic_vectors(args.rows, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    n = args.queries + 5
    queries = centers[rng.integers(len(centers), size=n)] + rng.standard_normal((n, DIM)).astype(np.float32) * (0.5 / math.sqrt(DIM))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    dist = 1.0 - queries @ vectors.T  # cosine distance, exact
    top = np.argpartition(dist, 10, axis=1)[:, :10]
    truth_ids = [set(map(int, row)) for row in top]
    kth = np.take_along_axis(dist, top, axis=1).max(axis=1)
    del dist

    t0 = time.perf_counter()
    if (work / "t.lance").exists():
        import lancedb
        tbl = lancedb.connect(str(work)).open_table("t")
    else:
        tbl = build_table(work, vectors)
    print(f"table: {tbl.count_rows()} rows, written in {time.perf_counter() - t0:.1f} s; {args.queries} cold queries per setting; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    only = {int(x) for x in args.only.split(",") if x}
    print(f"\n{'index':<48} {'build':>7} {'nprobes':>8} {'refine':>7} {'p50':>9} {'p95':>9} {'recall@10':>10} {'min':>5}")
    for number, (label, config, settings) in enumerate(trials(args.rows), start=1):
        if only and number not in only:
            continue
        t0 = time.perf_counter()
        tbl.create_index("vector", config=config(), replace=True)
        build = time.perf_counter() - t0
        for nprobes, refine in settings:
            m = measure(tbl, queries, truth_ids, kth, nprobes, refine)
            print(f"{number}. {label:<45} {build:>6.1f}s {nprobes:>8} {str(refine):>7} {m['p50']:>6.2f} ms {m['p95']:>6.2f} ms "
                  f"{m['recall']:>10.3f} {m['recall_min']:>5.2f}", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
