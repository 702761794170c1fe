"""Retrieval quality benchmark: does the passage that answers a question come back, within the same
budget of retrieved words, for vector, full-text and hybrid search, and for LlamaIndex's default
pipeline with the same embedder?

Two eval suites, each with verbatim gold passages (`reference_contexts`):

- `python-reference`: the shipped gate suite, 48 questions on the Python language reference
  (`examples.python_reference_corpus`). The hybrid fusion is tuned on this suite only (`--tune`).
- `networkx-algorithms`: 62 questions on the docstrings of NetworkX's graph algorithms
  (`examples.networkx_algorithms_corpus`), written from the text; held out: never used for tuning.

Metrics, per suite and system (a passage is "in" a text when the text is at least as long and
rapidfuzz's partial ratio of the two whitespace-normalised strings is >= the suite's
`context_match_threshold`, as the eval gate's context metrics use):

- gold within B words (B = 450, 900, 2250): the retrieved chunks, best first, are read as one text
  cut after B words; a hit when a gold passage lies in it. Chunk sizes differ between systems
  (llmfti ~110 words, LlamaIndex's default ~700), so this, not rank, compares them like with like;
- MRR: 1 / rank of the first chunk holding a gold passage (0 beyond the 40 read);
- recall@k (k = 4, the demo deployment's k, and 10): share of gold passages in the top-k chunks.

Sides: llmfti (ingest with the default FeatureConfig: MiniLM, 192-token chunks) searched through
`llmfti.store.search.query_table` (vector; hybrid with the default fusion), full text alone
(`search.text_candidates`, LanceDB's BM25 index), LanceDB's own hybrid query with its default RRF
reranker (what `hybrid=True` did before `llmfti.store.fusion`), and LlamaIndex's defaults
(`SimpleDirectoryReader` + `VectorStoreIndex.from_documents` with `HuggingFaceEmbedding` of the same
MiniLM folder; SentenceSplitter's defaults, 1024/200 tokens, counted with the MiniLM tokenizer
because its default, tiktoken, needs a download). Needs the `bench` extra. Run:

    .venv/bin/python bench/retrieval_quality.py [--work /tmp/rq] [--tune] [--plot bench/retrieval_quality.png]

`--work` keeps the corpora, the llmfti home and the LlamaIndex indices, so a re-run embeds nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SUITES = {"python-reference": "examples.python_reference_corpus", "networkx-algorithms": "examples.networkx_algorithms_corpus"}
TUNE_SUITE = "python-reference"
BUDGETS = (450, 900, 2250)
RECALL_KS = (4, 10)
POOL = 40  # results read per query and system: > 2250 words for every system here
CURVE = range(25, 3001, 25)  # the budgets of the plotted curves
# The tuning grid: reciprocal-rank fusion (constant, weight of the full-text ranks) and linear
# fusion of scores (cosine + weight x normalised BM25). Families list their text weights in
# increasing order: the rule in `choose` needs "the next stronger weight".
GRID = (
    [("rrf", "minmax", c, w) for c in (1, 5, 10, 20, 60) for w in (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)]
    + [("linear", norm, 60, w) for norm in ("minmax", "max") for w in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)]
)
_WS = re.compile(r"\s+")


def norm_ws(text: str) -> str:
    return _WS.sub(" ", text).strip()


class Gold:
    """Where a case's gold passages lie in a chunk: the fewest leading words of the chunk that hold
    one (None: no gold passage in it). Memoised per chunk text."""

    def __init__(self, passages: list[str], threshold: float):
        from rapidfuzz import fuzz

        self.passages = [norm_ws(p) for p in passages]
        self.threshold, self._ratio, self._memo = threshold * 100.0, fuzz.partial_ratio, {}

    def holds(self, text: str, passage: str) -> bool:
        # partial_ratio aligns the SHORTER string inside the longer: a text shorter than the passage
        # (a cut chunk, a title) would "hold" it by being a piece of it.
        t = norm_ws(text)
        return len(t) >= len(passage) and self._ratio(passage, t) >= self.threshold

    def words_needed(self, text: str) -> int | None:
        if text not in self._memo:
            words = text.split()
            best = None
            for p in self.passages:
                if not self.holds(text, p):
                    continue
                lo, hi = 1, len(words)  # the predicate only grows with the prefix: binary search
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self.holds(" ".join(words[:mid]), p):
                        hi = mid
                    else:
                        lo = mid + 1
                best = lo if best is None else min(best, lo)
            self._memo[text] = best
        return self._memo[text]

    def passages_in(self, text: str) -> set[int]:
        return {i for i, p in enumerate(self.passages) if self.holds(text, p)}


def case_metrics(texts: list[str], gold: Gold) -> dict:
    """words: retrieved words read before the end of the first gold passage (inf: none in the list)."""
    words, before, rank = math.inf, 0, None
    for i, text in enumerate(texts, 1):
        need = gold.words_needed(text)
        if need is not None:
            words = min(words, before + need)
            rank = rank or i
        before += len(text.split())
    out = {"words": words, "rr": 1.0 / rank if rank else 0.0}
    for k in RECALL_KS:
        found = set().union(*[gold.passages_in(t) for t in texts[:k]]) if texts else set()
        out[f"recall@{k}"] = len(found) / len(gold.passages)
    return out


def summarize(per_case: list[dict]) -> dict:
    n = len(per_case)
    out = {f"hits@{b}": sum(c["words"] <= b for c in per_case) for b in BUDGETS}
    out["mrr"] = sum(c["rr"] for c in per_case) / n
    for k in RECALL_KS:
        out[f"recall@{k}"] = sum(c[f"recall@{k}"] for c in per_case) / n
    out["n"] = n
    return out


def losses(base: list[dict], other: list[dict]) -> int:
    """Cases where `other` does worse than `base`: misses a budget base meets, or ranks the gold lower."""
    worse = 0
    for b, o in zip(base, other):
        budget_loss = any(b["words"] <= x < o["words"] for x in BUDGETS)
        worse += budget_loss or o["rr"] < b["rr"]
    return worse


def build_llmfti(suite: str, corpus: Path, home: Path):
    from llmfti.config.features import FeatureConfig
    from llmfti.pipelines.feature import ingest
    from llmfti.store import FeatureStore

    t0 = time.perf_counter()
    summary = ingest(suite, [str(corpus)], home=str(home), config=FeatureConfig())
    fg = FeatureStore(home).feature_group(suite)
    print(f"  llmfti ingest: {summary.chunks_written} chunks written ({summary.documents['unchanged']} documents unchanged) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    return fg


def build_llamaindex(corpus: Path, folder: str, persist: Path):
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from tokenizers import Tokenizer

    Settings.llm = None  # retrieval only; the default would look for an OpenAI key
    Settings.embed_model = HuggingFaceEmbedding(model_name=folder, device="cpu")
    if (persist / "docstore.json").is_file():
        return load_index_from_storage(StorageContext.from_defaults(persist_dir=str(persist))), "reused"
    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_padding()  # the saved tokenizer pads to / truncates at 128: counting needs the raw tokens
    tok.no_truncation()
    # SentenceSplitter's defaults (1024 tokens, overlap 200), counted with MiniLM's tokenizer.
    splitter = SentenceSplitter(tokenizer=lambda s: tok.encode(s, add_special_tokens=False).ids)
    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(corpus)).load_data()
    index = VectorStoreIndex.from_documents(docs, transformations=[splitter])
    index.storage_context.persist(persist_dir=str(persist))
    return index, f"built in {time.perf_counter() - t0:.1f} s"


def run_suite(name: str, work: Path, folder: str, with_llamaindex: bool) -> dict:
    """Every system's ranked texts per case, plus the candidate lists the tuning re-fuses."""
    from llmfti.evaluation.suites import load_suite
    from llmfti.store import search as search_mod

    suite = load_suite(REPO / "evals" / name)
    corpus = work / "corpus" / name
    importlib.import_module(SUITES[name]).write_corpus(corpus)
    print(f"\n[{name}] {len(suite.cases)} questions, corpus {sum(1 for _ in corpus.iterdir())} documents", flush=True)
    fg = build_llmfti(name, corpus, work / "home")
    table, embedder = fg.latest(), fg.embedder()
    embedder.warm_up()
    index = None
    if with_llamaindex:
        index, how = build_llamaindex(corpus, folder, work / "llamaindex" / name)
        print(f"  LlamaIndex index: {how}", flush=True)
    retriever = index.as_retriever(similarity_top_k=POOL) if index is not None else None

    cols = search_mod.RESULT_COLUMNS
    cases, ranked = [], {s: [] for s in SYSTEMS if s != "llamaindex" or retriever is not None}
    li_words = []
    for case in suite.cases:
        v = embedder.embed_query(case.question)
        vec = search_mod.vector_candidates(table, v, POOL, columns=cols)
        txt = search_mod.text_candidates(table, case.question, v, POOL, columns=cols)
        cases.append({"case": case, "vector": vec, "text": txt})
        ranked["vector"].append([r["text"] for r in search_mod.query_table(table, v, case.question, POOL)])
        ranked["full_text"].append([r["text"] for r in txt])
        ranked["hybrid"].append([r["text"] for r in search_mod.query_table(table, v, case.question, POOL, hybrid=True)])
        before = table.search(query_type="hybrid").vector(v).text(case.question).select(cols).limit(POOL).to_list()
        ranked["lancedb_rrf"].append([r["text"] for r in before])
        if retriever is not None:
            nodes = retriever.retrieve(case.question)
            ranked["llamaindex"].append([n.node.get_content() for n in nodes])
            li_words += [len(n.node.get_content().split()) for n in nodes]
    # Latency of the retrieve stage at the demo deployment's k=4 (query vector given), after the
    # warm-up above: what turning hybrid on costs per request. Shared cores: compare the two only.
    times = {False: [], True: []}
    for case in suite.cases:
        v = embedder.embed_query(case.question)
        for hybrid in (False, True, False, True):
            t0 = time.perf_counter()
            search_mod.query_table(table, v, case.question, 4, hybrid=hybrid)
            times[hybrid].append(time.perf_counter() - t0)
    chunk_words = [len(t.split()) for t in table.to_arrow().column("text").to_pylist()]
    sizes = {"llmfti_chunks": len(chunk_words), "llmfti_words_per_chunk": sum(chunk_words) / len(chunk_words),
             "vector_k4_p50_ms": statistics.median(times[False]) * 1e3, "hybrid_k4_p50_ms": statistics.median(times[True]) * 1e3}
    if retriever is not None:
        sizes["llamaindex_chunks"] = len(index.docstore.docs)
        sizes["llamaindex_words_per_retrieved_chunk"] = sum(li_words) / max(len(li_words), 1)
    golds = [Gold(c.reference_contexts, suite.gate.context_match_threshold) for c in suite.cases]
    per_case = {s: [case_metrics(texts, g) for texts, g in zip(ranked[s], golds)] for s in ranked}
    return {"suite": name, "n": len(suite.cases), "per_case": per_case, "candidates": cases, "golds": golds, "sizes": sizes}


SYSTEMS = {
    "vector": "vector (llmfti, cosine)",
    "full_text": "full text (LanceDB BM25)",
    "hybrid": "hybrid, llmfti fusion (default)",
    "lancedb_rrf": "hybrid, LanceDB RRF k=60 (before)",
    "llamaindex": "LlamaIndex defaults, same embedder",
}


def fusion_label(f) -> str:
    return f"rrf k={f.rrf_k} w={f.text_weight}" if f.method == "rrf" else f"linear {f.normalize} w={f.text_weight}"


def print_table(res: dict, held_out: bool) -> None:
    from llmfti.store.fusion import DEFAULT_FUSION

    s = res["sizes"]
    li = (f"; LlamaIndex {s['llamaindex_chunks']} chunks, {s['llamaindex_words_per_retrieved_chunk']:.0f} words per retrieved chunk"
          if "llamaindex_chunks" in s else "")
    print(f"\n{res['suite']}: {res['n']} questions{' (held out)' if held_out else ' (the tuning suite)'}; llmfti {s['llmfti_chunks']} chunks, "
          f"{s['llmfti_words_per_chunk']:.0f} words per chunk{li}; hybrid = {fusion_label(DEFAULT_FUSION)}")
    print(f"  retrieve stage at k=4, p50 (query vector given): vector {s['vector_k4_p50_ms']:.1f} ms, hybrid {s['hybrid_k4_p50_ms']:.1f} ms")
    head = "".join(f"{'gold@' + str(b) + 'w':>10}" for b in BUDGETS) + f"{'MRR':>8}" + "".join(f"{'R@' + str(k):>7}" for k in RECALL_KS)
    print(f"  {'system':<38}{head}")
    for key, label in SYSTEMS.items():
        if key not in res["per_case"]:
            continue
        m = summarize(res["per_case"][key])
        cells = "".join(f"{m[f'hits@{b}']:>7}/{m['n']:<2}" for b in BUDGETS)
        cells += f"{m['mrr']:8.3f}" + "".join(f"{m['recall@' + str(k)]:7.3f}" for k in RECALL_KS)
        print(f"  {label:<38}{cells}")
    v, h = summarize(res["per_case"]["vector"]), summarize(res["per_case"]["hybrid"])
    ok = all(h[f"hits@{b}"] >= v[f"hits@{b}"] for b in BUDGETS)
    vw, hw = ([c["words"] for c in res["per_case"][k]] for k in ("vector", "hybrid"))
    below = [b for b in CURVE if sum(w <= b for w in hw) < sum(w <= b for w in vw)]
    pv, ph = res["per_case"]["vector"], res["per_case"]["hybrid"]
    print(f"  hybrid >= vector at every budget: {'YES' if ok else 'NO'}; questions where hybrid does worse than vector "
          f"(a budget missed or the gold ranked lower): {losses(pv, ph)}, better: {losses(ph, pv)}; "
          f"budgets of the curve (every {CURVE.step} words to {CURVE.stop - 1}) where hybrid finds fewer: {len(below)}"
          + (f" ({below[0]}-{below[-1]} words)" if below else ""))


def tune(res: dict):
    """Re-fuse the stored candidates with every GRID setting (the same `fuse` that query_table calls)
    and pick one by the rule: no case worse than vector, for this weight AND the next stronger one
    of its family (a margin: not a setting at the edge of doing harm); then the highest MRR; then
    the most hits over the budgets; then the smaller text weight."""
    from llmfti.store.fusion import Fusion, fuse

    base = res["per_case"]["vector"]
    rows = []
    for method, norm, c, w in GRID:
        f = Fusion(method=method, normalize=norm, rrf_k=c, text_weight=w)
        per_case = [case_metrics([r["text"] for r in fuse(x["vector"], x["text"], POOL, f)], g) for x, g in zip(res["candidates"], res["golds"])]
        rows.append((f, summarize(per_case), losses(base, per_case)))
    family = lambda f: (f.method, f.normalize, f.rrf_k)  # noqa: E731
    qualified = []
    for i, (f, m, lost) in enumerate(rows):
        nxt = next((r for r in rows[i + 1:] if family(r[0]) == family(f)), None)
        if lost == 0 and (nxt is None or nxt[2] == 0):
            qualified.append((f, m))
    key = lambda fm: (fm[1]["mrr"], sum(fm[1][f"hits@{b}"] for b in BUDGETS), -fm[0].text_weight)  # noqa: E731
    print(f"\ntuning on {res['suite']} ({len(rows)} settings; vector: {summarize(base)['mrr']:.3f} MRR)")
    print(f"  {'fusion':<26}" + "".join(f"{'gold@' + str(b):>9}" for b in BUDGETS) + f"{'MRR':>8}{'worse':>7}")
    for f, m, lost in sorted(rows, key=lambda r: (-r[1]["mrr"], r[2]))[:15]:
        print(f"  {fusion_label(f):<26}" + "".join(f"{m['hits@' + str(b)]:>9}" for b in BUDGETS) + f"{m['mrr']:8.3f}{lost:>7}")
    best = max(qualified, key=key)[0] if qualified else None
    print(f"  chosen by the rule: {fusion_label(best) if best else 'none qualifies: keep vector'}")
    return best


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [0, *CURVE]
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    styles = {"vector": ("C0", "-"), "full_text": ("C2", ":"), "hybrid": ("C3", "-"), "lancedb_rrf": ("C1", "--"), "llamaindex": ("C7", "-.")}
    for ax, res in zip(axes[0], results):
        for key, label in SYSTEMS.items():
            if key in res["per_case"]:
                words = [c["words"] for c in res["per_case"][key]]
                color, ls = styles[key]
                ax.plot(budgets, [sum(w <= b for w in words) / len(words) for b in budgets], color=color, linestyle=ls, label=label)
        for b in BUDGETS:
            ax.axvline(b, color="#bbb", linewidth=0.8)
        ax.set_title(f"{res['suite']} ({res['n']} questions{', tuning suite' if res['suite'] == TUNE_SUITE else ', held out'})")
        ax.set_xlabel("retrieved words read, best chunk first")
        ax.set_ylabel("share of questions with the gold passage read")
        ax.set_ylim(0.4, 1.01)  # every system finds most gold passages in its first 100 words: show the rest
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    ap.add_argument("--work", help="keep corpora, llmfti home and LlamaIndex indices here (reused by the next run)")
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--tune", action="store_true", help=f"grid-search the fusion on {TUNE_SUITE} (only) and print the rule's choice")
    ap.add_argument("--plot", help="write the gold-within-budget curves to this PNG")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    from llmfti.config.features import EmbedderConfig
    from llmfti.models.embedders import load_embedder

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="llmfti-bench-rq-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        folder = load_embedder(EmbedderConfig(model="all-MiniLM-L6-v2")).source
        results = [run_suite(name, work, folder, not args.skip_llamaindex) for name in args.suites]
        for res in results:
            print_table(res, held_out=res["suite"] != TUNE_SUITE)
        if args.tune:
            from llmfti.store.fusion import DEFAULT_FUSION

            tuning = next((r for r in results if r["suite"] == TUNE_SUITE), None)
            if tuning is None:
                print(f"\n--tune needs {TUNE_SUITE} among --suites")
            else:
                best = tune(tuning)
                same = best is not None and best == DEFAULT_FUSION
                print(f"  llmfti.store.fusion.DEFAULT_FUSION is {fusion_label(DEFAULT_FUSION)}: {'the rule' + chr(39) + 's choice' if same else 'NOT the rule' + chr(39) + 's choice'}")
        if args.plot:
            plot(results, Path(args.plot))
        print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
        if args.json:
            out = {r["suite"]: {"sizes": r["sizes"], **{s: summarize(pc) for s, pc in r["per_case"].items()}} for r in results}
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
