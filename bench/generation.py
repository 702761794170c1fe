"""Generation speed: llmfti's in-process backend against llama.cpp, side by side in one run, on the
embedded SmolLM2-135M-Instruct and RAG-shaped prompts (the encoder's exact ids of a ~700-token
prompt with 4 retrieved contexts), greedy, 64 new tokens.

    python bench/generation.py [--quick] [--threads 2]

Rows (each measured in this run, same prompts, same token ids, at most 64 new tokens):
- llama.cpp: llama-cpp-python on the package's Q4_1 GGUF (the peer a local user would pick), the
  prompt given as token ids; concurrency through its server with default settings when installed;
- llmfti with `backend.decode: llama_cpp`: its prefill, then llama.cpp (the same build as the peer row,
  named in that row) decodes single requests; the 8-client column is batches, which decode on torch;
- llmfti TransformersGenerator as the product serves it (dtype auto, static KV cache, batching),
  without and with the int8 decode path (`backend.quantize: int8`), and fp32 as a like-for-like row.

Columns: prefill seconds (prompt -> first token), decode tokens/s (tokens after the first, counted
per prompt: both sides stop at EOS), end to end, tokens produced (mean; greedy answers can differ in
length where the numeric paths differ), and aggregate tokens/s with 8 concurrent requests. Ratios are against llama.cpp measured in the same run.
llama-cpp-python is not a dependency: `pip install llama-cpp-python` (a ~6 minute native build) or
the row says it is missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

NEW_TOKENS = 64


def prompts(home, n: int) -> list[list[int]]:
    """The encoder's prompt ids for `n` python-reference questions with 4 retrieved contexts each."""
    import json

    from llmfti.models.embedders import load_embedder
    from llmfti.registry import ModelRegistry
    from llmfti.store import FeatureStore
    from llmfti.store.retrieval import as_contexts, retrieve_contexts

    encoder = ModelRegistry(home).load_encoder("SmolLM2-135M-Instruct:1")
    fg = FeatureStore(home).feature_group("python-reference")
    embedder = load_embedder(fg.config.embedder, home)
    table = fg.table()
    cases = [json.loads(line) for line in (Path(__file__).resolve().parents[1] / "evals" / "python-reference" / "cases.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for case in cases[:n]:
        rows = retrieve_contexts(table, embedder, case["question"], 4)
        out.append(encoder.encode_prompt(case["question"], as_contexts(rows)).input_ids)
    return out


def llmfti_generator(home, dtype: str, quantize: str, decode: str = "torch"):
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.inference.runtime import _transformers_generator
    from llmfti.registry import ModelRegistry

    cfg = DeploymentConfig.model_validate({"name": "bench", "model": "SmolLM2-135M-Instruct:1", "retrieval": {"k": 0},
                                           "backend": {"dtype": dtype, "quantize": quantize, "decode": decode, "max_batch_size": 8, "batch_window_ms": 20}})
    gen = _transformers_generator(ModelRegistry(home), cfg)
    gen.warm_up()
    return gen


def measure_llmfti(gen, ids_list) -> dict:
    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest

    def request(ids, n):
        return GenerationRequest(input_ids=ids, settings=GenerationSettings(max_new_tokens=n, timeout_s=600))

    gen.generate(request(ids_list[0][:64], 4))  # warm: first-call overheads are not the model's speed
    prefill, e2e, counts = [], [], []
    for ids in ids_list:
        t = time.perf_counter()
        gen.generate(request(ids, 1))
        prefill.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = gen.generate(request(ids, NEW_TOKENS))
        e2e.append(time.perf_counter() - t)
        counts.append(_produced(out))
    return _summary(prefill, e2e, counts) | {"aggregate_8": _concurrent(lambda ids: _produced(gen.generate(request(ids, NEW_TOKENS))), ids_list)}


def _produced(out) -> int:
    # The tokens the model computed: an answer that ended with EOS also computed the EOS (not in the text).
    return out.completion_tokens + (out.finish_reason == "stop")


def _summary(prefill, e2e, counts) -> dict:
    """Medians over prompts; decode speed per prompt from the tokens it really produced (an answer
    that stops early at EOS must not count as 64 tokens)."""
    decode = [(n - 1) / max(e - p, 1e-9) for p, e, n in zip(prefill, e2e, counts) if n > 1]
    return {"prefill_s": statistics.median(prefill), "decode_tok_s": statistics.median(decode) if decode else float("nan"),
            "e2e_s": statistics.median(e2e), "tokens": statistics.mean(counts)}


def _concurrent(run_one, ids_list, clients: int = 8) -> float:
    """Aggregate generated tokens/s with `clients` requests in flight at once."""
    jobs = (ids_list * ((clients // len(ids_list)) + 1))[:clients]
    counts = [0] * clients
    t = time.perf_counter()
    threads = [threading.Thread(target=lambda i=i: counts.__setitem__(i, run_one(jobs[i]))) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - t)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def llama_cpp(threads: int):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from llmfti.models.defaults import packaged_generator_gguf

    return Llama(model_path=str(packaged_generator_gguf()), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False, logits_all=False)


def measure_llama(llm, ids_list) -> dict:
    def run(ids, n, marks=None):
        llm.reset()  # no prefix reuse between runs: every prompt is prefilled, as for llmfti
        out = []
        t = time.perf_counter()
        for tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            out.append(tok)
            if marks is not None and len(out) == 1:
                marks.append(time.perf_counter() - t)  # time to the first token: the prefill
            if len(out) >= n or tok == llm.token_eos():  # stops at EOS as its server does, and as llmfti does
                break
        if marks is not None:
            marks.append(time.perf_counter() - t)
        return len(out)

    run(ids_list[0][:64], 4)
    prefill, e2e, counts = [], [], []
    for ids in ids_list:
        marks: list[float] = []
        counts.append(run(ids, NEW_TOKENS, marks))
        prefill.append(marks[0])
        e2e.append(marks[1])
    lock = threading.Lock()  # one Llama context serves one request at a time, as a single-slot server does

    def serial(ids):
        with lock:
            return run(ids, NEW_TOKENS)

    return _summary(prefill, e2e, counts) | {"aggregate_8": _concurrent(serial, ids_list)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 prompts instead of 8")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--home", default=os.environ.get("LLMFTI_HOME", ".llmfti"), help="a home with the demo's feature group and SmolLM2 (make demo)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from llmfti.home import ProjectHome

    home = ProjectHome.at(args.home)
    ids_list = prompts(home, 3 if args.quick else 8)
    print(f"{len(ids_list)} RAG prompts, {statistics.mean(map(len, ids_list)):.0f} tokens on average, {NEW_TOKENS} new tokens, greedy, "
          f"{args.threads} threads, torch {torch.__version__}", flush=True)
    shared = [_common_prefix(a, b) for a, b in zip(ids_list, ids_list[1:])]
    if shared:
        print(f"consecutive prompts share their first {statistics.mean(shared):.0f} tokens on average: a llama.cpp server keeping its "
              "context would skip them; the llama.cpp rows reset the context, and llmfti caches no prefix either", flush=True)
    rows = {}
    llm = llama_cpp(args.threads)
    if llm is not None:
        from llmfti.models.llama_cpp_decode import llama_cpp_system_info

        # The build matters: an OpenMP build shares torch's libgomp (bench/generation.md, trial 12), and
        # the llama_cpp row below decodes with this same build.
        build = "OpenMP" if b"OPENMP = 1" in llama_cpp_system_info() else "no-OpenMP"
        rows[f"llama.cpp Q4_1 (peer, {build} build; 8 clients share one context)"] = measure_llama(llm, ids_list)
        llm.close()
    for label, dtype, quant, decode in (("llmfti bf16 prefill + llama.cpp decode (decode: llama_cpp; batches on torch)", "auto", "none", "llama_cpp"),
                                        ("llmfti bf16 + int4 decode (quantize: int4)", "auto", "int4", "torch"),
                                        ("llmfti bf16 + int8 decode (quantize: int8)", "auto", "int8", "torch"),
                                        ("llmfti bf16 (dtype auto, the default)", "auto", "none", "torch"),
                                        ("llmfti fp32 (like for like with the fp32 reference)", "float32", "none", "torch")):
        if decode == "llama_cpp" and llm is None:
            continue  # needs llama-cpp-python, like the peer row
        gen = llmfti_generator(home, dtype, quant, decode)
        rows[label] = measure_llmfti(gen, ids_list)
        gen.close()
    peer = next((r for k, r in rows.items() if k.startswith("llama.cpp")), None)
    print(f"\n{'':<78}{'prefill s':>10}{'decode tok/s':>14}{'e2e s':>8}{'tokens':>8}{'8 clients tok/s':>17}" + ("   vs llama.cpp: prefill / decode / e2e / 8 clients" if peer else ""))
    for label, r in rows.items():
        line = f"{label:<78}{r['prefill_s']:>10.2f}{r['decode_tok_s']:>14.1f}{r['e2e_s']:>8.2f}{r['tokens']:>8.1f}{r['aggregate_8']:>17.1f}"
        if peer:
            line += (f"   {peer['prefill_s'] / r['prefill_s']:.2f}x / {r['decode_tok_s'] / peer['decode_tok_s']:.2f}x / "
                     f"{peer['e2e_s'] / r['e2e_s']:.2f}x / {r['aggregate_8'] / peer['aggregate_8']:.2f}x")
        print(line)
    if peer is None:
        print("\nllama.cpp row missing: pip install llama-cpp-python (not a dependency of llmfti)", file=sys.stderr)


if __name__ == "__main__":
    main()
