"""Growth benchmark: does the cost of day-two operations stay flat as history grows?

At each feature-group size (chunks) and inference-log size (rows), in one run on one machine:

feature group (the feature pipeline's own code path: `ingest_items` -> chunk -> embed -> one commit ->
`ensure_indexes`; vectors are synthetic, see below):
  - full ingest of the corpus, then a re-ingest after 1 % of the documents changed (ratio of the two);
  - search p50/p95 over COLD queries (each query vector is new: never a repeat, never a stored row),
    through `search.search()` with the vector given (what `fg search` runs after embedding), and
    recall@10 against exact search (`bypass_vector_index()`) on the same table;
  - the same search again (other cold queries, same process) after `maintain` (`fg maintain`), which
    rewrites the fragments holding the re-ingest's deleted rows and merges index deltas;
  - `FeatureGroup.history()` (what `llmfti fg history` prints);
  - a simulated day of traffic with maintenance on: `--day-runs` ingests each changing 0.1 % of the
    documents, `pipelines.maintenance.maintain` after every 4th with a retention window that has
    passed (`0s`), one commit tagged and one pinned by a deployment: versions and fragments stored at
    the end, against the versions the runs created (what would be stored without maintenance);
inference log:
  - `InferenceLog.query(deployment, limit=20)`, what `llmfti logs --limit 20` runs (and, up to 100k
    rows, the path it replaced: read every matching row, sort in Python);
  - a simulated stretch of traffic (`--flushes` flushes of 5 rows, with the background maintenance of
    `LogMaintenance` on a compressed clock): flush p50/p95, then versions and fragments stored.

Vectors: synthetic, of the default embedder's dimension (384): unit vectors drawn around random
"topic" centres (noise norm 0.5, cosine ~0.9 to the centre), so nearest neighbours are meaningful
(uniform random vectors in 384 dimensions are all about equally far apart, and no index can rank
them). Queries are fresh draws around random centres. Texts are random words, so the full-text index
has real work. The real embedder is measured by `bench/ingest.py --cli`, not here.

    .venv/bin/python bench/growth.py --quick                    # 10k and 100k chunks and log rows (minutes)
    .venv/bin/python bench/growth.py --plot bench/growth.png    # 10k, 100k, 1M (long: run on quiet cores)

Prints ratios and curves; asserts nothing. Times are wall clock on whatever else shares the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # growth_report, also when loaded by path (tests)
from growth_report import load_runs, plot, report  # noqa: E402

DIM = 384
CHUNKS_PER_DOC = 10
WORDS = [f"w{i}" for i in range(30_000)]
_CENTER = re.compile(r"\bc(\d+)\b")


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# --- synthetic corpus ---------------------------------------------------------------------------

def make_embedder(n_centers: int, seed: int):
    """The hash embedder's tokenizer (chunking), with vectors drawn around the centre a chunk's text
    names (`c<i>`), the noise seeded by the text: the same text always gets the same vector."""
    from llmfti.models.hash_embedder import HashEmbedder

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_centers, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    class Synthetic(HashEmbedder):
        def _encode(self, texts):
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for i, t in enumerate(texts):
                m = _CENTER.search(t)
                c = centers[int(m.group(1)) % n_centers] if m else centers[0]
                noise = np.random.default_rng(abs(hash(t)) % (2**32)).standard_normal(DIM).astype(np.float32)
                v = c + noise * (0.5 / np.sqrt(DIM))
                out[i] = v / np.linalg.norm(v)
            return out

    return Synthetic(DIM), centers


def doc_text(d: int, version: int, n_centers: int, rnd: random.Random) -> str:
    paras = []
    for j in range(CHUNKS_PER_DOC):
        center = (d * CHUNKS_PER_DOC + j) % n_centers
        words = " ".join(rnd.choices(WORDS, k=44))
        paras.append(f"c{center} v{version} {words}.")
    return f"# Doc {d}\n\n" + "\n\n".join(paras) + "\n"


class Corpus:
    """Documents in memory (no files: the pipeline's `ingest_items` takes items), with versions."""

    def __init__(self, n_docs: int, n_centers: int, seed: int):
        self.n_docs, self.n_centers = n_docs, n_centers
        self.versions = [0] * n_docs
        self.texts: dict[int, tuple[int, str]] = {}  # generated once per version: the bench's own cost stays out of the timings
        self.rnd = random.Random(seed)
        self.when = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def change(self, fraction: float) -> int:
        picks = self.rnd.sample(range(self.n_docs), max(1, int(self.n_docs * fraction)))
        for d in picks:
            self.versions[d] += 1
        return len(picks)

    def items(self, docs: range | None = None):
        from llmfti.sources.items import SourceDocument

        for d in docs if docs is not None else range(self.n_docs):
            yield SourceDocument(f"doc{d:07d}.md", f"doc{d:07d}.md", self.text(d), self.when)

    def text(self, d: int) -> str:
        version, text = self.texts.get(d, (None, None))
        if version != self.versions[d]:
            rnd = random.Random(d * 1_000_003 + self.versions[d])  # a document's text depends only on its version
            text = doc_text(d, self.versions[d], self.n_centers, rnd)
            if len(self.texts) < 200_000:  # ~0.6 GB at most; beyond, texts are regenerated (1M chunks)
                self.texts[d] = (self.versions[d], text)
        return text

    def pregenerate(self) -> None:
        for d in range(min(self.n_docs, 200_000)):
            self.text(d)


# --- feature group ------------------------------------------------------------------------------

def feature_group_growth(work: Path, chunks: int, args) -> dict:
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.feature import ingest_items
    from llmfti.store import FeatureStore

    n_docs = max(1, chunks // CHUNKS_PER_DOC)
    n_centers = max(64, chunks // 40)
    embedder, centers = make_embedder(n_centers, args.seed)
    corpus = Corpus(n_docs, n_centers, args.seed)
    config = FeatureConfig(embedder={"model": f"hash-{DIM}"}, chunker={"chunk_tokens": 64, "overlap": 0})
    home = work / f"fg-{chunks}"
    fg = FeatureStore(home).feature_group("growth", must_exist=False)
    out: dict = {"chunks_target": chunks, "documents": n_docs}
    corpus.pregenerate()  # like files on disk: the texts exist before the clock starts

    # Full ingest, in runs of at most --ingest-batch documents (one commit each; memory stays bounded at 1M).
    step = max(1, args.ingest_batch // CHUNKS_PER_DOC)
    t0 = time.perf_counter()
    for start in range(0, n_docs, step):
        docs = range(start, min(n_docs, start + step))
        ingest_items(fg, lambda cfg, docs=docs: corpus.items(docs), config=config, embedder=embedder)
        print(f"    ingested {min(n_docs, start + step)}/{n_docs} documents ({time.perf_counter() - t0:.0f} s)", flush=True)
    out["full_ingest_s"] = time.perf_counter() - t0
    tbl = fg.table()
    out["chunks"] = tbl.count_rows()
    out["indices"] = [f"{i.index_type}({','.join(i.columns)})" for i in tbl.list_indices()]

    # Re-ingest after 1 % of the documents changed: the same call a scheduled `llmfti ingest --sync` makes.
    changed = corpus.change(0.01)
    summary, out["reingest_1pct_s"] = timed(ingest_items, fg, lambda cfg: corpus.items(), config=config, embedder=embedder, sync=True)
    out["reingest_1pct_docs"] = changed
    out["reingest_1pct_fraction"] = out["reingest_1pct_s"] / out["full_ingest_s"]
    assert summary.documents["updated"] == changed, summary.documents

    out.update(search_growth(fg, centers, args))
    # What a service that runs `fg maintain` after its ingests serves: the re-ingest's deleted rows
    # materialised (Lance filters them on every query until then) and the index deltas merged.
    from llmfti.pipelines.maintenance import maintain

    _, out["maintain_after_reingest_s"] = timed(maintain, home, [fg.key], keep_within="7d")
    out.update({f"search_maintained_{k.removeprefix('search_')}": v for k, v in search_growth(fg, centers, args, seed_offset=2).items()})
    _, out["history_s"] = timed(fg.history)
    _, out["history_s"] = timed(fg.history)  # warm: the second call is what a user sees on a live home
    out.update(simulated_day(home, fg, corpus, config, embedder, args))
    return out


class GivenVector:
    def __init__(self, vector):
        self.vector = vector

    def embed_query(self, text):
        return self.vector


def search_growth(fg, centers: np.ndarray, args, seed_offset: int = 1) -> dict:
    from llmfti.store import search as search_mod

    rng = np.random.default_rng(args.seed + seed_offset)  # another offset: other cold queries
    tbl = fg.table()

    def fresh_query():
        v = centers[rng.integers(len(centers))] + rng.standard_normal(DIM).astype(np.float32) * (0.5 / np.sqrt(DIM))
        return (v / np.linalg.norm(v)).astype(np.float32)

    for _ in range(5):  # warm the process (first-query allocations), on queries not measured
        search_mod.search(fg, "warm up", k=10, embedder=GivenVector(fresh_query()))
    times, recalls = [], []
    for i in range(args.queries):
        v = fresh_query()  # cold: a vector nobody asked for before
        res, dt = timed(search_mod.search, fg, f"query {i}", k=10, embedder=GivenVector(v))
        times.append(dt)
        exact = tbl.search(v).distance_type("cosine").bypass_vector_index().select(["chunk_id", "_distance"]).limit(10).to_list()
        truth, kth = {r["chunk_id"] for r in exact}, max(r["_distance"] for r in exact)
        got = [(r["chunk_id"], 1.0 - r["score"]) for r in res["results"]]
        recalls.append(min(1.0, sum(cid in truth or d <= kth + 1e-5 for cid, d in got) / len(truth)))
    return {"search_p50_ms": pct(times, 50), "search_p95_ms": pct(times, 95), "recall_at_10": float(np.mean(recalls)),
            "recall_at_10_min": float(np.min(recalls)), "queries": args.queries}


def simulated_day(home: Path, fg, corpus: Corpus, config, embedder, args) -> dict:
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.feature import ingest_items
    from llmfti.pipelines.maintenance import maintain
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store.maintenance import fragment_stats

    first_version = fg.table().version
    maint_s = []
    for run in range(args.day_runs):
        corpus.change(0.001)
        s = ingest_items(fg, lambda cfg: corpus.items(), config=config, embedder=embedder, sync=True)
        if run == 0:
            fg.tag(s.commit, "day-start")
        if run == 1:
            cfg = DeploymentConfig(name="growth", model="m:1", feature_group=fg.key, commit=s.commit)
            DeploymentStore(home).deploy(cfg, checks={"commit": str(s.commit), "checks": {"feature_group": fg.key, "resolved_commit": str(s.commit)}})
        if run % 4 == 3:
            _, dt = timed(maintain, home, [fg.key], keep_within="0s")
            maint_s.append(dt)
    tbl = fg.table()
    created = tbl.version - first_version
    return {"day_runs": args.day_runs, "day_versions_created": created, "day_versions_stored": len(tbl.list_versions()),
            "day_fragments_stored": fragment_stats(tbl, 1 << 20)["fragments"], "day_maintain_p50_s": statistics.median(maint_s) if maint_s else None}


# --- inference log ------------------------------------------------------------------------------

def build_log(store, rows: int, seed: int) -> None:
    import pyarrow as pa

    from llmfti.store.inference_log import LOG_TABLE, ensure_log_indexes, log_schema

    rng = np.random.default_rng(seed)
    schema = log_schema()
    tbl = store.db.create_table(LOG_TABLE, schema=schema)
    end = datetime.now(timezone.utc)
    span = timedelta(days=2).total_seconds()
    batch = 50_000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        times = [end - timedelta(seconds=span * (1 - (start + i) / rows)) for i in range(n)]
        vecs = rng.standard_normal((n, DIM)).astype(np.float32)
        status = np.where(rng.random(n) < 0.02, "error", "ok")
        data = {
            "request_id": [uuid.uuid4().hex for _ in range(n)], "time": times, "deployment": [f"d{i % 3}" for i in range(n)],
            "deployment_version": [1] * n, "model": ["m:1"] * n, "feature_group": ["growth:1"] * n, "commit": [7] * n,
            "commit_evaluated": [True] * n, "prompt_mode": ["tokens"] * n, "request": ['{"question": "q"}'] * n, "features": ["{}"] * n,
            "retrieved": ['[{"chunk_id": "x", "score": 0.5}]'] * n, "prompt_fingerprint": ["f"] * n, "prompt_text": [None] * n,
            "output": ["an answer " * 20] * n, "prompt_tokens": [700] * n, "completion_tokens": [40] * n,
            "timings_ms": ['{"total": 2600}'] * n, "status": status.tolist(), "error": [None] * n,
            "query_vector": list(vecs / np.linalg.norm(vecs, axis=1, keepdims=True)),
        }
        for field in schema:  # columns added to the log later (origin, host, ...) stay null, as in older logs
            data.setdefault(field.name, [None] * n)
        tbl.add(pa.Table.from_pydict(data, schema=schema))
    ensure_log_indexes(tbl)


def log_growth(work: Path, rows: int, args) -> dict:
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog, LogMaintenance

    store = FeatureStore(work / f"log-{rows}")
    _, build_s = timed(build_log, store, rows, args.seed)
    out: dict = {"log_rows": rows, "log_build_s": build_s}
    log = InferenceLog(store, maintenance=False)
    log.query("d0", limit=20)  # warm the process
    times = [timed(log.query, f"d{i % 3}", limit=20)[1] for i in range(args.log_queries)]
    out["logs_limit20_p50_ms"], out["logs_limit20_p95_ms"] = pct(times, 50), pct(times, 95)
    if rows <= 100_000:  # the path it replaced: every matching row read into Python, then sorted
        t0 = time.perf_counter()
        old = log.table.query(log.where("d1"), columns=[f.name for f in log.table.schema if f.name != "query_vector"])
        old.sort(key=lambda r: r["time"], reverse=True)
        out["logs_limit20_old_path_ms"] = (time.perf_counter() - t0) * 1e3
    log.close()

    # A stretch of traffic: flushes of 5 rows, with the background maintenance on a compressed clock
    # (its interval and retention window scaled down, so a few seconds stand for hours).
    log = InferenceLog(store, maintenance=LogMaintenance(interval_s=args.log_maint_interval_s, keep_within=timedelta(seconds=args.log_keep_within_s)))
    flushes, tbl = [], log.table.table()
    versions_before = tbl.version
    for i in range(args.flushes):
        for j in range(5):
            log.append({"request_id": uuid.uuid4().hex, "deployment": "d0", "deployment_version": 1, "status": "ok", "request": {"q": i},
                        "query_vector": np.zeros(DIM, dtype=np.float32)})
        flushes.append(timed(log.flush)[1])
        log._tick()  # the flusher thread's step after a flush: maintenance when due (the flush inside finds nothing)
    times = [timed(log.query, "d0", limit=20)[1] for _ in range(args.log_queries)]
    tbl = log.table.table()
    out.update({
        "flush_p50_ms": pct(flushes, 50), "flush_p95_ms": pct(flushes, 95), "flushes": args.flushes,
        "log_versions_created": tbl.version - versions_before, "log_versions_stored": len(tbl.list_versions()),
        "log_fragments_stored": len(tbl.to_lance().get_fragments()), "log_maintenance_runs": log.maintenance.runs,
        "logs_limit20_after_traffic_p50_ms": pct(times, 50),
    })
    log.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k and 100k chunks and log rows (minutes)")
    ap.add_argument("--sizes", help="chunk counts, comma-separated (default 10000,100000,1000000; --quick 10000,100000; '' for none)")
    ap.add_argument("--log-sizes", help="log rows, comma-separated (default as --sizes)")
    ap.add_argument("--queries", type=int, default=200, help="cold search queries per size")
    ap.add_argument("--log-queries", type=int, default=20)
    ap.add_argument("--flushes", type=int, default=120, help="flushes of 5 rows per log size")
    ap.add_argument("--log-maint-interval-s", type=float, default=0.5, help="LogMaintenance interval on the compressed clock")
    ap.add_argument("--log-keep-within-s", type=float, default=0.25, help="LogMaintenance retention window on the compressed clock")
    ap.add_argument("--day-runs", type=int, default=24, help="ingest runs in the simulated day")
    ap.add_argument("--ingest-batch", type=int, default=200_000, help="chunks per commit while building a size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="folder for the homes (default: a temporary folder, removed at the end)")
    ap.add_argument("--plot", help="write the curves to this PNG")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--from-json", nargs="+", metavar="FILE", help="measure nothing: report (and --plot) the figures of earlier --json runs")
    args = ap.parse_args(argv)
    if args.from_json:
        fgs, logs = load_runs(args.from_json)
        report(fgs, logs, judge=True)
        if args.plot:
            plot(fgs, logs, args.plot, title=f"llmfti growth benchmark ({len(args.from_json)} runs on 2 cores, see bench/README.md)")
        return 0
    default = "10000,100000" if args.quick else "10000,100000,1000000"
    # An empty list skips that part: --sizes '' --log-sizes 10000,1000000 runs the log alone.
    sizes = [int(s) for s in (default if args.sizes is None else args.sizes).split(",") if s.strip()]
    log_spec = args.log_sizes if args.log_sizes is not None else (args.sizes if args.sizes is not None else default)
    log_sizes = [int(s) for s in log_spec.split(",") if s.strip()]
    if args.quick:
        args.queries = min(args.queries, 100)

    # Lance reads its log level at import, before ProjectHome.connect could set it (as the CLI does).
    os.environ.setdefault("LANCE_LOG", "error")
    import lance
    import lancedb

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared with other jobs); "
          f"lancedb {lancedb.__version__}, pylance {lance.__version__}", flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="llmfti-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    fgs, logs = [], []
    try:
        for n in sizes:
            print(f"feature group: {n} chunks", flush=True)
            fgs.append(feature_group_growth(work, n, args))
            print("  " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in fgs[-1].items()}), flush=True)
        for n in log_sizes:
            print(f"inference log: {n} rows", flush=True)
            logs.append(log_growth(work, n, args))
            print("  " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in logs[-1].items()}), flush=True)
        report(fgs, logs, judge=not args.quick)
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
        if args.plot:
            plot(fgs, logs, args.plot)
        if args.json:
            Path(args.json).write_text(json.dumps({"feature_groups": fgs, "logs": logs, "cores": os.cpu_count()}, indent=2, default=str))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
