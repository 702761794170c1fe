"""Agent-service benchmark on the embedded defaults (MiniLM + SmolLM2-135M-Instruct, CPU).

Prints, from one run against a real `llmfti serve` process on loopback:
- the share of request time spent outside generation (p50; target <= 0.10), both as the server
  measures it (timings_ms) and as the client sees it (HTTP round trip);
- throughput with 8 concurrent clients as a ratio of 1 client (target >= 2.5, 0 errors).

    python bench/agent.py [--requests 8] [--max-new-tokens 32] [--home .llmfti-bench]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from llmfti.pipelines.feature import ingest as run_ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

QUESTIONS = [
    "What does the with statement do?", "How does a for loop work?", "What is a generator?",
    "What does the return statement do?", "How are exceptions raised?", "What is a lambda expression?",
    "What does the global statement do?", "How does the import statement find modules?",
    "What is an async function?", "What does the assert statement do?", "What are decorators?",
    "How do comparisons chain?",
]


def prepare(home: Path, max_new_tokens: int, batch: int) -> None:
    from llmfti.config import FeatureConfig, load_config
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.home import ProjectHome
    from llmfti.registry.defaults import pull_defaults
    from llmfti.pipelines.deployment import check_deployment
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore
    from examples.python_reference_corpus import write_corpus

    ph = ProjectHome.at(home)
    pull_defaults(ph)
    corpus = home / "corpus"
    write_corpus(corpus)
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(FeatureConfig, root / "configs/features/python-reference.yaml")
    run_ingest(FeatureStore(ph).feature_group("python-reference", must_exist=False), [str(corpus)], config=cfg)
    dep = DeploymentConfig(
        name="bench-agent", model="SmolLM2-135M-Instruct:1", feature_group="python-reference:1",
        retrieval={"k": 4}, generation={"max_new_tokens": max_new_tokens, "timeout_s": 300},
        backend={"max_batch_size": batch, "batch_window_ms": 25},
    )
    store = DeploymentStore(ph)
    store.deploy(dep, checks=check_deployment(dep, ph), force=True, reason="benchmark")


def one(url: str, question: str) -> dict:
    import httpx

    t0 = time.perf_counter()
    r = httpx.post(f"{url}/v1/deployments/bench-agent/invoke", json={"question": question}, timeout=600)
    wall = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        return {"error": r.status_code}
    body = r.json()
    return {"wall_ms": wall, **body["timings_ms"], "completion_tokens": body["usage"]["completion_tokens"]}


def run_clients(url: str, clients: int, per_client: int) -> tuple[float, list[dict]]:
    jobs = [QUESTIONS[i % len(QUESTIONS)] for i in range(clients * per_client)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda q: one(url, q), jobs))
    return time.perf_counter() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=".llmfti-bench")
    ap.add_argument("--requests", type=int, default=8, help="requests per client")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    home = Path(args.home).absolute()
    print(f"preparing {home} (defaults, corpus, feature group, deployment)...", file=sys.stderr)
    prepare(home, args.max_new_tokens, args.clients)
    from server_process import start_server

    proc, url = start_server(home, env={"TOKENIZERS_PARALLELISM": "false"})
    try:
        one(url, "warm up")
        seq_s, seq = run_clients(url, 1, args.requests)
        par_s, par = run_clients(url, args.clients, args.requests)
    finally:
        proc.kill()
        proc.wait()
    errors = sum(1 for r in seq + par if "error" in r)
    ok = [r for r in seq if "error" not in r]
    server_share = statistics.median((r["total"] - r["generate"]) / r["total"] for r in ok)
    client_share = statistics.median((r["wall_ms"] - r["generate"]) / r["wall_ms"] for r in ok)
    stages = {k: round(statistics.median(r[k] for r in ok), 2) for k in ("on_demand", "embed_query", "retrieve", "build_prompt", "generate", "log", "total", "wall_ms")}
    thr1 = len(seq) / seq_s
    thr8 = len(par) / par_s
    out = {
        "model": "SmolLM2-135M-Instruct (CPU)", "embedder": "all-MiniLM-L6-v2", "k": 4, "max_new_tokens": args.max_new_tokens,
        "p50_stage_ms_1_client": stages,
        "share_outside_generation_p50_server": round(server_share, 4),
        "share_outside_generation_p50_client": round(client_share, 4),
        "throughput_1_client_req_s": round(thr1, 3), f"throughput_{args.clients}_clients_req_s": round(thr8, 3),
        "throughput_ratio": round(thr8 / thr1, 2), "errors": errors,
        "targets": {"share_outside_generation_p50 <= 0.10": client_share <= 0.10, "throughput_ratio >= 2.5": thr8 / thr1 >= 2.5, "errors == 0": errors == 0},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
