"""Ingest benchmark: llmfti's document feature pipeline against raw encode and a LlamaIndex pipeline.

One run, one corpus (the Python language reference that ships with CPython, written as markdown by
`examples.python_reference_corpus`), one model (the embedded all-MiniLM-L6-v2 folder), CPU:

1. raw `SentenceTransformer.encode` of exactly the chunks llmfti embeds, in plain fp32 (the baseline
   the target is stated against) and in llmfti's own dtype (so the ratio shows the overhead alone);
2. llmfti ingest (files -> clean -> chunk -> embed -> LanceDB commit -> indices) into a fresh home;
3. a re-ingest of the unchanged corpus (fresh store and embedder objects, as a new CLI run would);
4. a LlamaIndex IngestionPipeline (SimpleDirectoryReader -> SentenceSplitter -> HuggingFaceEmbedding
   from the same folder -> LanceDBVectorStore) over the same files, same chunk size and overlap.

Model loading is excluded everywhere (every side gets a warmed model); reading the files is included
for both pipelines. Throughput ratios are ratios of wall time over the same work, so they are
independent of how many chunks each side's splitter makes. Needs the `bench` extra:

    python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install torch==2.13.0
    /work/bench-venv/bin/pip install -e '.[bench]'
    HF_HUB_OFFLINE=1 /work/bench-venv/bin/python bench/ingest.py [--quick] [--docs N] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from llmfti.pipelines.feature import ingest as run_ingest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = {"vs_raw_fp32": 0.85, "vs_llamaindex": 2.0, "reingest_fraction": 0.05}


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


def time_raw_encode(folder: str, texts: list[str], dtype: str, batch_size: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    if dtype != "float32":
        model = model.to(getattr(torch, dtype))
    model.eval()
    model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations
    with Clock() as clock:
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return {"s": clock.s, "cpu": clock.cpu}


def show(tag: str, label: str, t: dict, chunks: int | None, note: str = "") -> None:
    rate = f"{chunks / t['s']:6.1f} chunks/s ({chunks} chunks)" if chunks else note
    print(f"{tag}{label + ':':<48} {t['s']:8.3f} s wall {t['cpu']:8.3f} s cpu  {rate}", flush=True)


def run_llmfti(corpus: Path, home: Path, config, batch_size: int) -> dict:
    from llmfti.models.embedders import load_embedder
    from llmfti.store import FeatureStore

    embedder = load_embedder(config.embedder)
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


def run_llamaindex(corpus: Path, folder: str, uri: Path, chunk_tokens: int, overlap: int, batch_size: int) -> dict:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 topics, no targets judged")
    ap.add_argument("--docs", type=int, default=None, help="first N topics of the reference (default: all)")
    ap.add_argument("--batch-size", type=int, default=64, help="encode batch size for every side")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; ratios are per round, the median is reported")
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    docs = 6 if args.quick and args.docs is None else args.docs

    import torch

    from llmfti.config.features import FeatureConfig
    from llmfti.models.embedders import load_embedder

    work = Path(tempfile.mkdtemp(prefix="llmfti-bench-"))
    try:
        corpus = work / "corpus"
        files = write_corpus(corpus, docs)
        config = FeatureConfig(embedder={"batch_size": args.batch_size})
        probe = load_embedder(config.embedder)
        folder = probe.source
        probe._resolve_runtime()
        dtype = probe.dtype
        texts = llmfti_chunks(corpus, config, probe)
        n_tokens = sum(len(probe.token_offsets(t)) for t in texts)
        print(f"corpus: {len(files)} Python reference topics, {sum(f.stat().st_size for f in files) / 1e3:.0f} kB; "
              f"llmfti chunks: {len(texts)} ({n_tokens / max(len(texts), 1):.0f} tokens avg)", flush=True)
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"load average {os.getloadavg()[0]:.1f} (other processes share these cores)", flush=True)

        # Rounds interleave the sides so load from other processes hits them alike; each side keeps its best round.
        rounds = []
        for r in range(args.repeat):
            tag = f"[round {r + 1}/{args.repeat}] " if args.repeat > 1 else ""
            res = {"raw32": time_raw_encode(folder, texts, "float32", args.batch_size)}
            show(tag, "raw SentenceTransformer.encode float32", res["raw32"], len(texts))
            res["rawdt"] = res["raw32"] if dtype == "float32" else time_raw_encode(folder, texts, dtype, args.batch_size)
            if dtype != "float32":
                show(tag, f"raw SentenceTransformer.encode {dtype}", res["rawdt"], len(texts))
            gc.collect()
            ours = res["llmfti"] = run_llmfti(corpus, work / f"home{r}", config, args.batch_size)
            show(tag, f"llmfti ingest ({ours['dtype']})", ours, ours["chunks"])
            show(tag, "llmfti re-ingest, unchanged", {"s": ours["reingest_s"], "cpu": ours["reingest_cpu"]}, None,
                 f"documents {ours['reingest_documents']}, commit made: {ours['reingest_committed']}")
            gc.collect()
            if not args.skip_llamaindex:
                li = res["li"] = run_llamaindex(corpus, folder, work / f"llamaindex{r}", config.chunker.chunk_tokens, config.chunker.overlap, args.batch_size)
                show(tag, f"LlamaIndex IngestionPipeline ({li['dtype']})", li, li["chunks"])
                gc.collect()
            rounds.append(res)

        # Ratios are taken within a round (sides measured minutes apart, not across rounds), and the
        # median over rounds is reported: other processes on shared cores come and go.
        per_round = []
        for r in rounds:
            f = {}
            for key, sfx in (("s", ""), ("cpu", "_cpu")):
                f["vs_raw_fp32" + sfx] = r["raw32"][key] / r["llmfti"][key]
                f["vs_raw_same_dtype" + sfx] = r["rawdt"][key] / r["llmfti"][key]
                f["vs_llamaindex" + sfx] = r["li"][key] / r["llmfti"][key] if "li" in r else None
                f["reingest_fraction" + sfx] = r["llmfti"]["reingest_" + ("s" if key == "s" else "cpu")] / r["llmfti"][key]
            per_round.append(f)
        figures = {k: (None if per_round[0][k] is None else statistics.median(f[k] for f in per_round)) for k in per_round[0]}
        li = None if args.skip_llamaindex else rounds[0]["li"]

        over = f", median of {len(rounds)} rounds" if len(rounds) > 1 else ""
        print(f"\nllmfti ingest, same corpus (ratios of time for the same work{over}); wall time, and CPU time of the process:")
        judge = not args.quick

        def line(label, key, better):
            target = TARGETS.get(key)
            vals = [figures[key], figures[key + "_cpu"]]
            cells = "  ".join("    n/a" if v is None else f"{v:7.3f}" for v in vals)
            verdict = ""
            if target is not None and vals[0] is not None and judge:
                ok = [v >= target if better == ">=" else v <= target for v in vals]
                verdict = f"target {better} {target}: wall {'MET' if ok[0] else 'MISSED'}, cpu {'MET' if ok[1] else 'MISSED'}"
            print(f"  {label:<68} {cells}  {verdict}")

        print(f"  {'':<68} {'wall':>7}  {'cpu':>7}")
        line("throughput vs raw encode, plain fp32 (the baseline)", "vs_raw_fp32", ">=")
        line(f"throughput vs raw encode in {dtype}, like llmfti (overhead alone)", "vs_raw_same_dtype", ">=")
        line(f"throughput vs LlamaIndex IngestionPipeline ({li['dtype'] if li else 'n/a'}, its default)", "vs_llamaindex", ">=")
        line("re-ingest of the unchanged corpus, as a fraction of the first", "reingest_fraction", "<=")
        if len(rounds) > 1:
            for key, label in (("vs_raw_fp32", "vs raw fp32"), ("vs_raw_same_dtype", f"vs raw {dtype}"), ("vs_llamaindex", "vs LlamaIndex"), ("reingest_fraction", "re-ingest")):
                if per_round[0][key] is not None:
                    print(f"  per round, wall, {label + ':':<22} " + "  ".join(f"{f[key]:.3f}" for f in per_round))
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
        if args.quick:
            print("  (--quick: too small to judge the targets)")
        if args.json:
            out = {"corpus_topics": len(files), "chunks": len(texts), "dtype_llmfti": dtype, "figures": figures, "per_round": per_round, "rounds": rounds,
                   "cpu": cpu_model(), "cores": os.cpu_count()}
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
