"""Scale-out benchmark: the Ray engine against the local engine, and batch inference against the
online service, on this machine, each pair on the same input in the same run.

1. Ingest: `ingest(..., engine="local")` vs `engine="ray"` (a local Ray with `--ray-cpus` CPUs) on the
   same corpus into two fresh homes: wall time of each, the ratio, and the identity check (same chunk
   ids; the largest difference between the two vectors of a chunk). The local side gets an embedder
   whose weights are already loaded; the Ray side's time includes starting its actors and loading the
   embedder in them (that is what a Ray run costs), Ray's own start-up is reported apart.
2. Inference: the same requests through `llmfti serve` (a separate process on loopback, `--clients`
   concurrent HTTP clients) and through `batch_infer` (engine local, the same concurrency): requests
   per second of each and the ratio. Same deployment, same tuple, same generation settings.

    python bench/scale.py --quick        # hash embedder, 12 topics, the tiny random model: a smoke run (~2 min), ratios not meaningful
    python bench/scale.py                # MiniLM over the 79 topics, SmolLM2-135M-Instruct, 24 requests (~10+ min on 2 cores)

Cores are shared with other jobs here: each figure is one run, printed with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on loopback (read when ray is imported)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUESTIONS = [
    "What does the with statement do?", "How does a for loop work?", "What is a generator?", "What does the return statement do?",
    "How are exceptions raised?", "What is a lambda expression?", "What does the global statement do?", "How does import find modules?",
    "What is an async function?", "What does the assert statement do?", "What are decorators?", "How do comparisons chain?",
]


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bench_ingest(work: Path, quick: bool, ray_cpus: int) -> dict:
    import numpy as np

    from examples.python_reference_corpus import write_corpus
    from llmfti.config import FeatureConfig, load_config
    from llmfti.models.embedders import load_embedder
    from llmfti.pipelines.feature import ingest
    from llmfti.store import FeatureStore

    corpus = work / "corpus"
    files = write_corpus(corpus)
    if quick:
        for extra in files[12:]:
            extra.unlink()
        cfg = FeatureConfig(embedder={"model": "hash-64"}, chunker={"chunk_tokens": 192, "overlap": 32})
    else:
        cfg = load_config(FeatureConfig, ROOT / "configs/features/python-reference.yaml")
    docs = len(list(corpus.glob("*.md")))
    embedder = load_embedder(cfg.embedder, None)
    embedder.warm_up()

    t0 = time.perf_counter()
    local = ingest("docs", [str(corpus)], home=work / "local", config=cfg, embedder=embedder)
    local_s = time.perf_counter() - t0

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=ray_cpus, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_ray = ingest("docs", [str(corpus)], home=work / "ray", config=cfg, engine="ray")  # actors load the embedder themselves
    ray_s = time.perf_counter() - t0

    a = {r["chunk_id"]: r["vector"] for r in FeatureStore(work / "local").feature_group("docs").table().to_arrow().select(["chunk_id", "vector"]).to_pylist()}
    b = {r["chunk_id"]: r["vector"] for r in FeatureStore(work / "ray").feature_group("docs").table().to_arrow().select(["chunk_id", "vector"]).to_pylist()}
    same_ids = set(a) == set(b)
    max_diff = max((float(np.max(np.abs(np.asarray(a[c]) - np.asarray(b[c])))) for c in a if c in b), default=float("nan"))
    return {
        "corpus": f"{docs} Python reference topics", "embedder": embedder.id, "dtype": embedder.dtype, "chunks": local.chunks_written,
        "local_s": round(local_s, 3), "ray_s": round(ray_s, 3), "ray_start_s": round(ray_start_s, 3), "ray_cpus": ray_cpus,
        "ray_over_local_time": round(ray_s / local_s, 2), "local_chunks_per_s": round(local.chunks_written / local_s, 1),
        "ray_chunks_per_s": round(on_ray.chunks_written / ray_s, 1), "same_chunk_ids": same_ids, "max_abs_vector_diff": max_diff,
        "commits": {"local": local.data_commit, "ray": on_ray.data_commit},
    }


def prepare_deployment(work: Path, quick: bool, batch: int, max_new_tokens: int) -> Path:
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.deployment import check_deployment
    from llmfti.registry.deployments import DeploymentStore

    if quick:
        from agent_fixtures import make_home

        home = make_home(work / "agent")
        model, fg = "tiny:1", "docs:1"
    else:
        from bench.agent import prepare

        home = work / "agent" / "home"
        prepare(home, max_new_tokens, batch)
        model, fg = "SmolLM2-135M-Instruct:1", "python-reference:1"
    dep = DeploymentConfig(name="bench-scale", model=model, feature_group=fg, retrieval={"k": 4 if not quick else 2},
                           generation={"max_new_tokens": max_new_tokens, "timeout_s": 600}, backend={"max_batch_size": batch, "batch_window_ms": 25})
    DeploymentStore(home).deploy(dep, checks=check_deployment(dep, home), force=True, reason="bench/scale.py")
    return home


def bench_inference(work: Path, quick: bool, requests: int, clients: int, max_new_tokens: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from llmfti.pipelines.batch_inference import batch_infer
    from server_process import start_server

    home = prepare_deployment(work, quick, clients, max_new_tokens)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(requests)]
    path = work / "questions.jsonl"
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions))

    proc, url = start_server(home)
    try:
        httpx.post(f"{url}/v1/deployments/bench-scale/invoke", json={"question": "warm up"}, timeout=600)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            codes = list(pool.map(lambda q: httpx.post(f"{url}/v1/deployments/bench-scale/invoke", json={"question": q}, timeout=600).status_code, questions))
        online_s = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
    # batch_infer loads the deployment itself and its time includes that load (the server's does not: it was
    # warm), so the batch figure is the conservative one.
    summary = batch_infer("bench-scale", path, work / "answers.jsonl", home=home, concurrency=clients, generator="deployment")
    batch_rps = summary.requests_per_s
    return {
        "model": "tiny random Llama (quick)" if quick else "SmolLM2-135M-Instruct (CPU)", "requests": requests, "concurrency": clients,
        "max_new_tokens": max_new_tokens, "online_req_s": round(requests / online_s, 3), "online_errors": sum(c != 200 for c in codes),
        "batch_req_s_incl_model_load": batch_rps, "batch_s_incl_model_load": summary.duration_s, "batch_ok": summary.ok,
        "batch_over_online_throughput": round(batch_rps / (requests / online_s), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="hash embedder, 12 topics, tiny model: a smoke run, not figures")
    ap.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--requests", type=int, default=None, help="inference requests (default 24; --quick 16)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients = batch concurrency = the backend's max_batch_size")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 32 (--quick 8)")
    ap.add_argument("--only", choices=("ingest", "inference"), default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmfti-bench-scale-"))
    out = {"mode": "quick (smoke run: ratios on a toy workload)" if args.quick else "full", "machine": f"{os.cpu_count()} cores", "load_before": load()}
    try:
        if args.only in (None, "ingest"):
            print("ingest: local engine vs Ray engine ...", file=sys.stderr)
            out["ingest"] = bench_ingest(work, args.quick, args.ray_cpus)
        if args.only in (None, "inference"):
            print("inference: llmfti serve vs batch-infer ...", file=sys.stderr)
            out["inference"] = bench_inference(work, args.quick, args.requests or (16 if args.quick else 24), args.clients,
                                               args.max_new_tokens or (8 if args.quick else 32))
        out["load_after"] = load()
        print(json.dumps(out, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
