"""Ingest benchmark: llmfti's document feature pipeline against raw encode and a LlamaIndex pipeline.

One run, one corpus (the Python language reference that ships with CPython, written as markdown by
`examples.python_reference_corpus`), one model (the embedded all-MiniLM-L6-v2 folder), CPU.

In-process mode (the default), every side with a warmed model, compared at the SAME dtype:

1. raw `SentenceTransformer.encode` of exactly the chunks llmfti embeds, in fp32 and in bf16, once in its
   own batches (cut from the chunks sorted by characters) and once over llmfti's batches (cut by token
   count): the latter is the like-for-like baseline for llmfti's overhead, the former shows the batching;
2. llmfti ingest (files -> clean -> chunk -> embed -> LanceDB commit -> indices) into a fresh home,
   once in fp32 and once in bf16, then a re-ingest of the unchanged corpus;
3. a LlamaIndex IngestionPipeline (SimpleDirectoryReader -> SentenceSplitter -> HuggingFaceEmbedding
   from the same folder -> LanceDBVectorStore) over the same files, same chunk size and overlap, in
   fp32 (its default) and in bf16 (the same model cast, as llmfti casts it).

The headline rows compare llmfti and LlamaIndex at one dtype (fp32 with fp32, bf16 with bf16). That
llmfti's default dtype is bf16 on CPUs with native bf16, where LlamaIndex's default is fp32, is an
advantage of the default, reported as its own labelled row, not as pipeline speed.

`--cli` mode measures ingest as a user runs it: `llmfti ingest CORPUS --json` in a fresh process and a
fresh home (start-up, imports, model load, chunking, writes and index build all included), against a
raw same-dtype `encode` of the same chunks (warmed, in this process); then a no-op re-ingest of the
unchanged corpus, again from the CLI. Default corpus: ~130 documents of NetworkX's algorithm reference
(`examples/networkx_algorithms_corpus.py`, written by nobody here; ~900 chunks). Targets: first ingest
>= 0.85 x raw encode, no-op re-ingest <= 5 % of the first. A second raw row gives the encode llmfti's
own batches (cut from the chunks sorted by token count, where sentence-transformers sorts by characters),
so the ratio against it is the pipeline's cost alone and the difference between the two is the batching.

Throughput ratios are ratios of wall time over the same work, so they are independent of how many
chunks each side's splitter makes. The LlamaIndex side needs the `bench` extra:

    python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install torch==2.13.0
    /work/bench-venv/bin/pip install -e '.[bench]'
    HF_HUB_OFFLINE=1 /work/bench-venv/bin/python bench/ingest.py [--quick] [--docs N] [--json out.json]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest.py --cli [--corpus DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from llmfti.pipelines.feature import ingest as run_ingest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = {"vs_raw_fp32": 0.85, "vs_llamaindex": 2.0, "reingest_fraction": 0.05, "cli_vs_raw_same_dtype": 0.85, "cli_noop_fraction": 0.05}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_corpus(dest: Path, docs: int | None) -> list[Path]:
    from examples.python_reference_corpus import write_corpus as write_all

    staging = dest.parent / "all-topics"
    files = write_all(staging)
    if docs:
        files = files[:docs]
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return sorted(dest.glob("*.md"))


def llmfti_chunks(corpus: Path, config, embedder) -> list[str]:
    """Exactly the texts llmfti's ingest embeds for this corpus (same loader, cleaner, chunker)."""
    from llmfti.sources.loaders import QuarantineItem, load_sources
    from llmfti.transforms.model_independent.clean import clean_text
    from llmfti.transforms.registry import get_chunker

    chunker = get_chunker(config.chunker.name)(config.chunker, embedder.token_offsets, embedder.tokenizer_fingerprint)
    texts = []
    for item in load_sources([str(corpus)], max_file_bytes=config.max_file_bytes, kind=config.kind):
        if isinstance(item, QuarantineItem):
            continue
        texts += [c.embed_text for c in chunker.chunk(clean_text(item.text))]
    return texts


class Clock:
    """Wall time and this process's CPU time (all threads) of a block. CPU time is far less disturbed
    by other processes on shared cores, so both are reported."""

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.s, self.cpu = time.perf_counter() - self._w, time.process_time() - self._c


def time_raw_encode(folder: str, texts: list[str], dtype: str, batch_size: int, order: list[int] | None = None) -> dict:
    """A warmed `SentenceTransformer.encode` of `texts`: in one call (its own batches, cut from the texts
    sorted by characters), or, given `order`, one call per batch of `batch_size` cut from that order
    (llmfti's batches: the same padded shapes, so only the pipeline around the encode differs)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    if dtype != "float32":
        model = model.to(getattr(torch, dtype))
    model.eval()
    model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations
    with Clock() as clock:
        if order is None:
            model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
        else:
            for start in range(0, len(order), batch_size):
                batch = [texts[i] for i in order[start : start + batch_size]]
                model.encode(batch, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return {"s": clock.s, "cpu": clock.cpu}


def show(tag: str, label: str, t: dict, chunks: int | None, note: str = "") -> None:
    rate = f"{chunks / t['s']:6.1f} chunks/s ({chunks} chunks)" if chunks else note
    print(f"{tag}{label + ':':<48} {t['s']:8.3f} s wall {t['cpu']:8.3f} s cpu  {rate}", flush=True)


def run_llmfti(corpus: Path, home: Path, config, batch_size: int) -> dict:
    from llmfti.models.embedders import load_embedder
    from llmfti.store import FeatureStore

    embedder = load_embedder(config.embedder)
    embedder.warm_up()
    embedder.warm_up()
    embedder.embed(["warm-up"] * 8)
    fg = FeatureStore(home).feature_group("bench", must_exist=False)
    with Clock() as c1:
        first = run_ingest(fg, [str(corpus)], config=config, embedder=embedder)
    del embedder, fg
    gc.collect()
    # Re-ingest as a new run would: fresh store, embedder built from the stored config (not loaded).
    fg = FeatureStore(home).feature_group("bench")
    with Clock() as c2:
        again = run_ingest(fg, [str(corpus)])
    return {
        "s": c1.s, "cpu": c1.cpu, "reingest_s": c2.s, "reingest_cpu": c2.cpu, "chunks": first.chunks_written, "documents": first.documents,
        "reingest_documents": again.documents, "reingest_committed": again.committed, "dtype": fg.info["embedder_dtype"],
    }


def run_llamaindex(corpus: Path, folder: str, uri: Path, chunk_tokens: int, overlap: int, batch_size: int, dtype: str = "float32") -> dict:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.lancedb import LanceDBVectorStore
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_padding()  # the saved tokenizer pads to / truncates at 128; counting needs the raw tokens
    tok.no_truncation()
    # The same tokenizer as llmfti's chunker counts with (LlamaIndex's default, tiktoken, needs a download).
    splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=lambda s: tok.encode(s, add_special_tokens=False).ids)
    embed = HuggingFaceEmbedding(model_name=folder, device="cpu", embed_batch_size=batch_size, local_files_only=True)
    if dtype != "float32":  # the same cast llmfti makes, so the two pipelines compare at one dtype
        import torch

        embed._model = embed._model.to(getattr(torch, dtype))
    embed.get_text_embedding_batch(["warm-up"] * 8)
    store = LanceDBVectorStore(uri=str(uri), table_name="bench", mode="overwrite")
    pipeline = IngestionPipeline(transformations=[splitter, embed], vector_store=store)
    clock = Clock().__enter__()
    # Only the file name as metadata (like llmfti's doc_id): SentenceSplitter counts metadata into
    # chunk_size, and the default metadata (absolute path, sizes, dates) leaves too little room at 192.
    docs = SimpleDirectoryReader(str(corpus), required_exts=[".md"], file_metadata=lambda p: {"file_name": Path(p).name}).load_data()
    nodes = pipeline.run(documents=docs)
    clock.__exit__()
    rows = store.table.count_rows() if getattr(store, "table", None) is not None else None
    return {"s": clock.s, "cpu": clock.cpu, "chunks": len(nodes), "rows": rows, "dtype": str(next(embed._model.parameters()).dtype).replace("torch.", "")}


def write_cli_corpus(dest: Path, docs: int) -> list[Path]:
    """The first `docs` documents of NetworkX's algorithm reference (nobody here wrote them)."""
    from examples.networkx_algorithms_corpus import write_corpus as write_nx

    files = sorted(write_nx(dest.parent / "networkx-all"))[:docs]
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return sorted(dest.glob("*.md"))


def run_cli(corpus: Path, home: Path) -> dict:
    """`llmfti ingest` as a user runs it: a fresh process each time (imports, model load included)."""
    import subprocess

    cmd = [sys.executable, "-m", "llmfti", "--home", str(home), "ingest", str(corpus), "-f", "bench", "--json"]
    env = {**os.environ, "LLMFTI_LOG_LEVEL": "warning"}
    out = {}
    for label in ("first", "noop"):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        out[label + "_s"] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"llmfti ingest failed: {proc.stderr[-2000:]}")
        summary = json.loads(proc.stdout)
        out[label + "_chunks"], out[label + "_committed"] = summary["chunks_written"], summary["committed"]
    return out


def main_cli(args) -> int:
    """--cli: the CLI end to end against a raw same-dtype encode of the same chunks (see the module doc)."""
    import torch

    from llmfti.config.features import FeatureConfig
    from llmfti.models.embedders import load_embedder

    work = Path(tempfile.mkdtemp(prefix="llmfti-bench-cli-"))
    try:
        if args.corpus:
            corpus = Path(args.corpus)
            files = sorted(p for p in corpus.rglob("*") if p.is_file())
        else:
            corpus = work / "corpus"
            files = write_cli_corpus(corpus, args.docs or (20 if args.quick else 130))
        config = FeatureConfig(embedder={"batch_size": args.batch_size})
        probe = load_embedder(config.embedder)
        probe._resolve_runtime()
        dtype = probe.dtype
        texts = llmfti_chunks(corpus, config, probe)
        print(f"corpus: {len(files)} documents ({corpus}), {len(texts)} llmfti chunks; dtype {dtype} (what `auto` resolves here)")
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} "
              "(other processes share these cores)", flush=True)
        rounds = []
        for r in range(args.repeat):
            # Measured in random order each round, so neither raw row always runs on a warmer machine.
            paths = [("raw", None), ("raw_same_batches", probe.batch_order(texts))]
            random.Random(r).shuffle(paths)
            raw = {key: time_raw_encode(probe.source, texts, dtype, args.batch_size, order) for key, order in paths}
            cli = run_cli(corpus, work / f"home{r}")
            rounds.append({"raw_s": raw["raw"]["s"], "raw_same_batches_s": raw["raw_same_batches"]["s"], **cli,
                           "ratio": raw["raw"]["s"] / cli["first_s"], "ratio_same_batches": raw["raw_same_batches"]["s"] / cli["first_s"],
                           "noop_fraction": cli["noop_s"] / cli["first_s"]})
            print(f"[round {r + 1}/{args.repeat}] raw encode {dtype} {raw['raw']['s']:.2f} s (its own batches), "
                  f"{raw['raw_same_batches']['s']:.2f} s (llmfti's batches); `llmfti ingest` first {cli['first_s']:.2f} s "
                  f"({cli['first_chunks']} chunks), no-op re-ingest {cli['noop_s']:.2f} s (commit: {cli['noop_committed']})", flush=True)
        ratio = statistics.median(x["ratio"] for x in rounds)
        same = statistics.median(x["ratio_same_batches"] for x in rounds)
        noop = statistics.median(x["noop_fraction"] for x in rounds)
        judge = not args.quick
        print(f"\nllmfti ingest from the CLI, end to end (median of {len(rounds)} round(s), wall time):")
        for label, value, key, op in (("first ingest, a cold CLI process, vs a warmed raw same-dtype encode in sentence-transformers' order", ratio, "cli_vs_raw_same_dtype", ">="),
                                      ("no-op re-ingest, as a fraction of the first (no model load)", noop, "cli_noop_fraction", "<=")):
            target = TARGETS[key]
            ok = value >= target if op == ">=" else value <= target
            print(f"  {label:<104} {value:6.3f}  " + (f"target {op} {target}: {'MET' if ok else 'MISSED'}" if judge else "(--quick: not judged)"))
        # Like with like: the raw encode given llmfti's batches (cut by token count, not characters), so
        # the ratio is the pipeline's own cost; the headline's difference from it is the batching.
        print(f"  {'first ingest, cold CLI, vs a warmed raw encode of the same batches (the pipeline; batching is the rest)':<104} {same:6.3f}  (no target)")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"mode": "cli", "chunks": len(texts), "dtype": dtype, "rounds": rounds, "ratio": ratio, "ratio_same_batches": same,
                                                   "noop_fraction": noop, "cores": os.cpu_count(), "cpu": cpu_model()}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 topics (--cli: 20 documents), no targets judged")
    ap.add_argument("--docs", type=int, default=None, help="first N topics of the reference (default: all); --cli: N NetworkX documents (130)")
    ap.add_argument("--cli", action="store_true", help="measure `llmfti ingest` end to end from the CLI (see the module doc)")
    ap.add_argument("--corpus", help="--cli: ingest this folder instead of the NetworkX documents")
    ap.add_argument("--batch-size", type=int, default=64, help="encode batch size for every side")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; ratios are per round, the median is reported")
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.cli:
        return main_cli(args)
    docs = 6 if args.quick and args.docs is None else args.docs

    import torch

    from llmfti.config.features import FeatureConfig
    from llmfti.models.embedders import load_embedder, resolve_dtype

    work = Path(tempfile.mkdtemp(prefix="llmfti-bench-"))
    try:
        corpus = work / "corpus"
        files = write_corpus(corpus, docs)
        config = FeatureConfig(embedder={"batch_size": args.batch_size})
        probe = load_embedder(config.embedder)
        folder = probe.source
        default_dtype = resolve_dtype("auto", "cpu")  # what llmfti's `auto` picks here
        dtypes = ["float32", "bfloat16"]
        texts = llmfti_chunks(corpus, config, probe)
        n_tokens = sum(len(probe.token_offsets(t)) for t in texts)
        print(f"corpus: {len(files)} Python reference topics, {sum(f.stat().st_size for f in files) / 1e3:.0f} kB; "
              f"llmfti chunks: {len(texts)} ({n_tokens / max(len(texts), 1):.0f} tokens avg)", flush=True)
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"load average {os.getloadavg()[0]:.1f} (other processes share these cores); llmfti's default dtype here: {default_dtype}", flush=True)

        # Rounds interleave the sides so load from other processes hits them alike.
        rounds = []
        for r in range(args.repeat):
            tag = f"[round {r + 1}/{args.repeat}] " if args.repeat > 1 else ""
            res = {}
            for dt in dtypes:
                res[f"raw_{dt}"] = time_raw_encode(folder, texts, dt, args.batch_size)
                show(tag, f"raw SentenceTransformer.encode {dt}", res[f"raw_{dt}"], len(texts))
                gc.collect()
                res[f"raw_same_{dt}"] = time_raw_encode(folder, texts, dt, args.batch_size, probe.batch_order(texts))
                show(tag, f"raw encode {dt}, llmfti's batches", res[f"raw_same_{dt}"], len(texts))
                gc.collect()
                cfg = FeatureConfig(embedder={"batch_size": args.batch_size, "dtype": dt})
                ours = res[f"llmfti_{dt}"] = run_llmfti(corpus, work / f"home{r}-{dt}", cfg, args.batch_size)
                show(tag, f"llmfti ingest ({ours['dtype']})", ours, ours["chunks"])
                show(tag, f"llmfti re-ingest, unchanged ({dt})", {"s": ours["reingest_s"], "cpu": ours["reingest_cpu"]}, None,
                     f"documents {ours['reingest_documents']}, commit made: {ours['reingest_committed']}")
                gc.collect()
                if not args.skip_llamaindex:
                    li = res[f"li_{dt}"] = run_llamaindex(corpus, folder, work / f"llamaindex{r}-{dt}", config.chunker.chunk_tokens,
                                                          config.chunker.overlap, args.batch_size, dt)
                    show(tag, f"LlamaIndex IngestionPipeline ({li['dtype']})", li, li["chunks"])
                    gc.collect()
            rounds.append(res)

        # Ratios are taken within a round (sides measured minutes apart, not across rounds), and the
        # median over rounds is reported: other processes on shared cores come and go.
        per_round = []
        for r in rounds:
            f = {}
            for key, sfx in (("s", ""), ("cpu", "_cpu")):
                for dt in dtypes:
                    f[f"vs_raw_{dt}" + sfx] = r[f"raw_{dt}"][key] / r[f"llmfti_{dt}"][key]
                    f[f"vs_raw_same_{dt}" + sfx] = r[f"raw_same_{dt}"][key] / r[f"llmfti_{dt}"][key]
                    f[f"vs_llamaindex_{dt}" + sfx] = r[f"li_{dt}"][key] / r[f"llmfti_{dt}"][key] if f"li_{dt}" in r else None
                # The defaults: llmfti's `auto` dtype against LlamaIndex's fp32. An advantage of the default, not of the pipeline.
                f["defaults_vs_llamaindex" + sfx] = r["li_float32"][key] / r[f"llmfti_{default_dtype}"][key] if "li_float32" in r else None
                f["reingest_fraction" + sfx] = r[f"llmfti_{default_dtype}"]["reingest_" + ("s" if key == "s" else "cpu")] / r[f"llmfti_{default_dtype}"][key]
            per_round.append(f)
        figures = {k: (None if per_round[0][k] is None else statistics.median(f[k] for f in per_round)) for k in per_round[0]}

        over = f", median of {len(rounds)} rounds" if len(rounds) > 1 else ""
        print(f"\nllmfti ingest, same corpus (ratios of time for the same work{over}); wall time, and CPU time of the process:")
        judge = not args.quick

        def line(label, key, better, target=None):
            vals = [figures[key], figures[key + "_cpu"]]
            cells = "  ".join("    n/a" if v is None else f"{v:7.3f}" for v in vals)
            verdict = ""
            if target is not None and vals[0] is not None and judge:
                ok = [v >= target if better == ">=" else v <= target for v in vals]
                verdict = f"target {better} {target}: wall {'MET' if ok[0] else 'MISSED'}, cpu {'MET' if ok[1] else 'MISSED'}"
            print(f"  {label:<72} {cells}  {verdict}")

        print(f"  {'':<72} {'wall':>7}  {'cpu':>7}")
        print("  same dtype on both sides (the headline):")
        line("  llmfti fp32 vs LlamaIndex IngestionPipeline fp32", "vs_llamaindex_float32", ">=", TARGETS["vs_llamaindex"])
        line("  llmfti bf16 vs LlamaIndex IngestionPipeline bf16", "vs_llamaindex_bfloat16", ">=", TARGETS["vs_llamaindex"])
        line("  llmfti fp32 vs raw encode fp32, same batches (overhead alone)", "vs_raw_same_float32", ">=", TARGETS["vs_raw_fp32"])
        line("  llmfti bf16 vs raw encode bf16, same batches (overhead alone)", "vs_raw_same_bfloat16", ">=")
        print("  llmfti's batches cut by token count (a product default; sentence-transformers and LlamaIndex cut by characters):")
        line("  llmfti fp32 vs raw encode fp32 in sentence-transformers' order", "vs_raw_float32", ">=")
        line("  llmfti bf16 vs raw encode bf16 in sentence-transformers' order", "vs_raw_bfloat16", ">=")
        print("  the defaults (a dtype advantage, not pipeline speed):")
        line(f"  llmfti default ({default_dtype}) vs LlamaIndex default (fp32)", "defaults_vs_llamaindex", ">=")
        line("re-ingest of the unchanged corpus, as a fraction of the first", "reingest_fraction", "<=", TARGETS["reingest_fraction"])
        if len(rounds) > 1:
            for key in ("vs_llamaindex_float32", "vs_llamaindex_bfloat16", "vs_raw_same_float32", "vs_raw_same_bfloat16", "vs_raw_float32", "vs_raw_bfloat16",
                        "defaults_vs_llamaindex", "reingest_fraction"):
                if per_round[0][key] is not None:
                    print(f"  per round, wall, {key + ':':<26} " + "  ".join(f"{f[key]:.3f}" for f in per_round))
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
        if args.quick:
            print("  (--quick: too small to judge the targets)")
        if args.json:
            out = {"corpus_topics": len(files), "chunks": len(texts), "default_dtype": default_dtype, "figures": figures, "per_round": per_round,
                   "rounds": rounds, "cpu": cpu_model(), "cores": os.cpu_count()}
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
