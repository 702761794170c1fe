"""Monitoring benchmark: what logging the query vector costs the request path, and how the time of a
monitoring report grows with the inference log.

1. Request path: `InferenceLog.append` (what the online pipeline's `log` stage does) with and
   without a 384-float query vector (all-MiniLM-L6-v2's dimension), interleaved in one run so both
   sides see the same machine load; plus what the vector would cost as a plain JSON list (the
   encoding not chosen). Median and p95 per append, in microseconds.
2. Report time: a synthetic log of N rows (two days, the second day monitored against the first as a
   `window:` baseline, a hash-64 feature group, query vectors of 64 floats), then `monitor()` and
   the HTML report, timed apart. Ratios are against the smallest N of the same run.

    python bench/monitor.py --quick                   # 2k and 10k rows, 300 appends (~1 minute)
    python bench/monitor.py                           # 10k, 100k and 1M rows, 2000 appends
    python bench/monitor.py --rows 10000,50000 --appends 1000

The home is a temporary folder (or --home, kept). No model is loaded: the deployment is recorded
without its checks, and vectors come from the deterministic hash embedder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
TOPICS = {
    "loops": "for while loop iterate iterable range break continue repeat condition".split(),
    "with": "with statement context manager exit enter block resource close file".split(),
    "generators": "generator yield lazily values state next iterator send expression suspend".split(),
    "classes": "class method instance attribute inherit super init object self property".split(),
}
STAGES = {"on_demand": 0.02, "embed_query": 5.0, "retrieve": 4.5, "build_prompt": 1.2, "generate": 2500.0}


# --- 1. the request path ------------------------------------------------------------------------------
def _row(i: int, k: int, vec, base: dict, side: str) -> dict:
    row = {**base, "request_id": f"{k}-{i}"}
    if side == VECTOR:
        row["query_vector"] = vec
    elif side == JSON_LIST:
        row["request"] = {**row["request"], "vector_json": vec.tolist()}  # the same vector as a JSON list, for comparison
    return row


PLAIN, VECTOR, JSON_LIST = "without vector", "with vector (base64 float32, as logged)", "with vector as a JSON list (not chosen)"


def bench_append(home: Path, n: int) -> dict[str, list[tuple[str, float, float]]]:
    """Per side: the whole append (encode + write + fsync), and the encoding alone (no I/O), in us.
    Sides rotate order every round so none always follows an fsync of another."""
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import JSON_FIELDS, InferenceLog, _encode_vector

    log = InferenceLog(FeatureStore(home / "append"))
    rng = np.random.default_rng(0)
    base = {"deployment": "bench", "deployment_version": 1, "model": "m:1", "feature_group": "docs:1", "commit": 3, "commit_evaluated": True,
            "request": {"question": "How does a for loop iterate over an iterable?"}, "features": {},
            "retrieved": [{"chunk_id": f"c{i}", "score": 0.5} for i in range(4)], "prompt_fingerprint": "f" * 64, "prompt_text": "x" * 2000,
            "output": "A for loop calls iter() on the iterable and next() until StopIteration." * 3, "prompt_tokens": 600,
            "completion_tokens": 60, "timings_ms": dict(STAGES), "status": "ok", "error": "", "time": T0.isoformat()}
    sides = [PLAIN, VECTOR, JSON_LIST]
    whole: dict[str, list[float]] = {s: [] for s in sides}
    encode: dict[str, list[float]] = {s: [] for s in sides}
    for i in range(n):
        vec = rng.normal(size=384).astype(np.float32)
        order = sides[i % 3:] + sides[:i % 3]
        for side in order:
            k = sides.index(side)
            row = _row(i, k, vec, base, side)
            t = time.perf_counter()
            log.append(row)
            whole[side].append((time.perf_counter() - t) * 1e6)
            row = _row(i, k, vec, base, side)
            t = time.perf_counter()  # what append does before writing: the JSON fields, the vector, one line
            for key in JSON_FIELDS:
                row[key] = json.dumps(row.get(key), default=str)
            _encode_vector(row)
            json.dumps(row, default=str)
            encode[side].append((time.perf_counter() - t) * 1e6)
    log.close()

    def stats(times):
        return [(s, statistics.median(v), float(np.percentile(v, 95))) for s, v in times.items()]

    return {"append (encode + write + fsync)": stats(whole), "encoding alone (no I/O)": stats(encode)}


# --- 2. report time vs log rows -------------------------------------------------------------------------
def prepare_home(home: Path) -> list[str]:
    from llmfti.config import FeatureConfig
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.feature import ingest
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore

    corpus = home.parent / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for topic, words in TOPICS.items():
        (corpus / f"{topic}.md").write_text(f"# {topic}\n\n" + " ".join(words * 3) + ".\n")
    fg = FeatureStore(home).feature_group("docs", must_exist=False)
    ingest(fg, [str(corpus)], config=FeatureConfig(embedder={"model": "hash-64"}))
    DeploymentStore(home).deploy(DeploymentConfig(name="bench", model="m:1", feature_group="docs:1", retrieval={"k": 4}),
                                 checks={"commit": "latest", "checks": {}}, force=True, reason="benchmark: no model needed to monitor")
    return FeatureStore(home).feature_group("docs:1").read(columns=["chunk_id"]).column("chunk_id").to_pylist()


def write_rows(home: Path, n: int, chunk_ids: list[str], *, batch: int = 100_000, seed: int = 0) -> None:
    """N rows over two days straight into the log table (the flush path's end state, without segments)."""
    import pyarrow as pa

    from llmfti.models.hash_embedder import HashEmbedder
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog, log_schema

    rng = random.Random(seed)
    pool = []  # questions and their vectors, reused: embedding a million questions is not what is measured
    for i in range(4000):
        topic = list(TOPICS)[i % len(TOPICS)]
        pool.append(" ".join(rng.sample(TOPICS[topic], 5)) + "?")
    vectors = HashEmbedder(64).embed(pool)
    table = InferenceLog(FeatureStore(home)).table
    schema = log_schema()
    step = timedelta(days=2) / n
    nrng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        pick = nrng.integers(0, len(pool), m)
        scale = nrng.uniform(0.8, 1.25, (m, len(STAGES)))
        timings = [{s: round(ms * f, 3) for (s, ms), f in zip(STAGES.items(), row)} for row in scale]
        timings = [json.dumps({**t, "total": round(sum(t.values()), 3)}) for t in timings]
        scores = nrng.uniform(0.1, 0.9, m)
        status = np.where(nrng.random(m) < 0.02, "GenerationFailed", "ok")
        cols = {
            "request_id": [f"r{start + i}" for i in range(m)], "time": [T0 + step * (start + i) for i in range(m)],
            "deployment": ["bench"] * m, "deployment_version": [1] * m, "model": ["m:1"] * m, "feature_group": ["docs:1"] * m,
            "commit": [1] * m, "commit_evaluated": [True] * m, "prompt_mode": ["local"] * m,
            "request": [json.dumps({"question": pool[p]}) for p in pick], "features": ["{}"] * m,
            "retrieved": [json.dumps([{"chunk_id": chunk_ids[p % len(chunk_ids)], "score": round(float(s), 4)}]) for p, s in zip(pick, scores)],
            "prompt_fingerprint": ["f"] * m, "prompt_text": [None] * m, "output": [pool[p] for p in pick], "prompt_tokens": [600] * m,
            "completion_tokens": [60] * m, "timings_ms": timings, "status": status.tolist(), "error": [""] * m,
        }
        flat = vectors[pick].reshape(-1)
        offsets = pa.array(np.arange(0, (m + 1) * 64, 64, dtype=np.int32))
        vector = pa.ListArray.from_arrays(offsets, pa.array(flat, type=pa.float32()))
        # In the schema's order; columns added to the log later (origin, host, ...) stay null, as in older logs.
        arrays = [vector if f.name == "query_vector" else pa.array(cols.get(f.name, [None] * m), type=f.type) for f in schema]
        table.table().add(pa.Table.from_arrays(arrays, schema=schema))


def warm_imports() -> None:
    """Import what monitor() and the report import on first use, so that the first row is not
    charged with scikit-learn's, scipy's and matplotlib's import time (seconds here)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.dates  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401


def bench_report(root: Path, n: int) -> dict:
    from llmfti.pipelines.monitoring import monitor

    home = root / f"rows-{n}" / "home"
    chunk_ids = prepare_home(home)
    t = time.perf_counter()
    write_rows(home, n, chunk_ids)
    written = time.perf_counter() - t
    cpu, t = time.process_time(), time.perf_counter()
    run = monitor(home, "bench", since=T0 + timedelta(days=1), until=T0 + timedelta(days=2),
                  baseline=f"window:{T0.isoformat()}..{(T0 + timedelta(days=1)).isoformat()}")
    analysed, analysed_cpu = time.perf_counter() - t, time.process_time() - cpu
    t = time.perf_counter()
    path = run.write_report(root / f"rows-{n}" / "monitor.html")
    rendered = time.perf_counter() - t
    return {"rows": n, "window_rows": run.result["requests"], "write_s": written, "monitor_s": analysed, "monitor_cpu_s": analysed_cpu,
            "report_s": rendered, "html_kb": path.stat().st_size / 1024, "alerts": len(run.result["alerts"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2k and 10k rows, 300 appends")
    ap.add_argument("--rows", default=None, help="comma-separated log sizes (default 10000,100000,1000000)")
    ap.add_argument("--appends", type=int, default=None, help="appends per side (default 2000)")
    ap.add_argument("--home", default=None, help="work folder (kept); default a temporary one (removed)")
    args = ap.parse_args()
    sizes = [int(x) for x in (args.rows or ("2000,10000" if args.quick else "10000,100000,1000000")).split(",")]
    appends = args.appends or (300 if args.quick else 2000)
    tmp = None if args.home else tempfile.TemporaryDirectory(prefix="llmfti-bench-monitor-")
    root = Path(args.home or tmp.name)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes share these cores)")

    print(f"\n1. request path: InferenceLog.append, {appends} appends per side, interleaved (a 384-float query vector)")
    for what, rows in bench_append(root, appends).items():
        base = rows[0][1]
        print(f"  {what:44s} {'p50 us':>9s} {'p95 us':>9s} {'p50 vs without':>15s}")
        for side, p50, p95 in rows:
            print(f"    {side:42s} {p50:9.1f} {p95:9.1f} {p50 - base:+12.1f} us")

    print("\n2. monitoring report vs log rows (window = the second day, baseline = window:first day; sample 2000)")
    warm_imports()
    results = [bench_report(root, n) for n in sizes]
    first = results[0]
    print(f"  {'log rows':>9s} {'window':>8s} {'write s':>8s} {'monitor s':>10s} {'cpu s':>7s} {'report s':>9s} {'html kB':>8s} "
          f"{'x time':>7s} {'x rows':>7s}")
    for r in results:
        print(f"  {r['rows']:9d} {r['window_rows']:8d} {r['write_s']:8.2f} {r['monitor_s']:10.2f} {r['monitor_cpu_s']:7.2f} {r['report_s']:9.2f} "
              f"{r['html_kb']:8.0f} {r['monitor_s'] / first['monitor_s']:7.2f} {r['rows'] / first['rows']:7.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
