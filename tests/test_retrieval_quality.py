"""Retrieval quality: hybrid search never loses to vector search where full text is noisy, and still
helps where the vector is unsure; the benchmark's passage metrics; the held-out eval suite is written
from its corpus, verbatim."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DIM = 32


def _vec_at(q: np.ndarray, cos: float, rng) -> np.ndarray:
    """A unit vector at exactly cosine `cos` from the unit vector q."""
    u = rng.standard_normal(q.shape[0])
    u -= (u @ q) * q
    u /= np.linalg.norm(u)
    return (cos * q + np.sqrt(1 - cos * cos) * u).astype(np.float32)


def _table(tmp_path, rows):
    import lancedb

    from llmfti.store.indexing import ensure_indexes

    for i, r in enumerate(rows):
        r.update(chunk_id=f"c{i:03d}", source=r["doc_id"], heading_path="")
    tbl = lancedb.connect(str(tmp_path / "db")).create_table("chunks", data=rows)
    assert ensure_indexes(tbl, threshold=10**9) == ["fts"]  # the FTS index feature groups get; exact vector search
    return tbl


@pytest.fixture(scope="module")
def noisy_text(tmp_path_factory):
    """Eight questions. Each has one gold chunk, closest to the query vector but sharing no word
    with the question, and four decoys that repeat the question's words (BM25 ranks them first)
    and sit further away; plus background chunks."""
    rng = np.random.default_rng(0)
    words = ["quokka", "zephyr", "marmot", "gizmo", "walrus", "nectar", "fjord", "tundra", "basalt", "lichen", "kelp", "ibex",
             "orchid", "sable", "cobalt", "yarrow"]
    rows, queries = [], []
    for i in range(8):
        q = rng.standard_normal(DIM)
        q /= np.linalg.norm(q)
        a, b = words[2 * i], words[2 * i + 1]
        queries.append((q.astype(np.float32), f"what is a {a} {b}?", f"gold{i}.md"))
        rows.append({"doc_id": f"gold{i}.md", "text": f"The answer for question {i} is written in other words entirely.", "vector": _vec_at(q, 0.80, rng)})
        for j, cos in enumerate((0.62, 0.58, 0.55, 0.50)):
            rows.append({"doc_id": f"decoy{i}-{j}.md", "text": f"{a} {b} {a} {b} {a} catalogue entry {j}", "vector": _vec_at(q, cos, rng)})
    for j in range(40):
        v = rng.standard_normal(DIM)
        rows.append({"doc_id": f"bg{j}.md", "text": f"background note {j} about nothing in particular", "vector": (v / np.linalg.norm(v)).astype(np.float32)})
    return _table(tmp_path_factory.mktemp("noisy"), rows), queries


def _ranked_doc_ids(tbl, q, text, k, **kw):
    from llmfti.store.search import query_table

    return [r["doc_id"] for r in query_table(tbl, q, text, k, **kw)]


def test_hybrid_never_ranks_below_vector_when_full_text_is_noisy(noisy_text):
    tbl, queries = noisy_text
    for q, text, gold in queries:
        vector = _ranked_doc_ids(tbl, q, text, 5)
        hybrid = _ranked_doc_ids(tbl, q, text, 5, hybrid=True)
        full_text = [r["doc_id"] for r in tbl.search(text, query_type="fts").select(["doc_id"]).limit(5).to_list()]
        assert vector[0] == gold and gold not in full_text  # the setting: vector right, full text all decoys
        assert hybrid[0] == gold, (text, hybrid)
        for k in range(1, 6):
            assert (gold in hybrid[:k]) >= (gold in vector[:k])


def test_reciprocal_rank_fusion_loses_on_the_same_corpus(noisy_text):
    """Why the default is not RRF: equal-weight RRF (LanceDB's default hybrid reranker, what
    hybrid=True did before) puts a decoy that is second by vector and first by BM25 above the gold."""
    from llmfti.store.fusion import Fusion

    tbl, queries = noisy_text
    rrf = Fusion(method="rrf", rrf_k=60, text_weight=1.0)
    assert all(_ranked_doc_ids(tbl, q, text, 1, hybrid=True, fusion=rrf)[0] != gold for q, text, gold in queries)


def test_hybrid_uses_full_text_when_the_vector_is_unsure(tmp_path):
    """Not a no-op: where two chunks are nearly as close to the query, the one holding its words wins."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal(DIM)
    q /= np.linalg.norm(q)
    rows = [{"doc_id": "near.md", "text": "a general remark on several related topics", "vector": _vec_at(q, 0.72, rng)},
            {"doc_id": "answer.md", "text": "the frobnicate option sets the quux level", "vector": _vec_at(q, 0.70, rng)}]
    rows += [{"doc_id": f"bg{j}.md", "text": f"filler text number {j}", "vector": _vec_at(q, 0.1, rng)} for j in range(10)]
    tbl = _table(tmp_path, rows)
    text = "what does frobnicate set?"
    assert _ranked_doc_ids(tbl, q, text, 2) == ["near.md", "answer.md"]
    assert _ranked_doc_ids(tbl, q, text, 2, hybrid=True) == ["answer.md", "near.md"]


def test_hybrid_results_keep_the_api(noisy_text):
    """k, the prefilter, best first by `score`, and only the result columns (no fusion internals)."""
    from llmfti.store.search import RESULT_COLUMNS, query_table

    tbl, queries = noisy_text
    q, text, gold = queries[0]
    rows = query_table(tbl, q, text, 3, hybrid=True, where="doc_id != 'gold0.md'")
    assert len(rows) == 3 and gold not in [r["doc_id"] for r in rows]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert set(rows[0]) == set(RESULT_COLUMNS) | {"score"}
    # Stop words only: full text matches nothing, and hybrid is vector search with the same scores.
    assert query_table(tbl, q, "what is the", 3, hybrid=True) == query_table(tbl, q, "what is the", 3)


def test_fusion_formulas():
    from llmfti.store.fusion import Fusion, fuse

    vec = [{"chunk_id": "a", "_cosine": 0.80}, {"chunk_id": "b", "_cosine": 0.75}]
    txt = [{"chunk_id": "b", "_cosine": 0.75, "_score": 9.0}, {"chunk_id": "c", "_cosine": 0.30, "_score": 3.0}]
    linear = {r["chunk_id"]: r["score"] for r in fuse(vec, txt, 3, Fusion(text_weight=0.1))}
    assert linear == pytest.approx({"b": 0.85, "a": 0.80, "c": 0.30})  # min-max: the best BM25 adds 0.1, the weakest 0
    rrf = fuse(vec, txt, 3, Fusion(method="rrf", rrf_k=60, text_weight=0.5))
    assert [r["chunk_id"] for r in rrf] == ["b", "a", "c"]
    assert rrf[0]["score"] == pytest.approx(1 / 62 + 0.5 / 61, abs=1e-6)
    with pytest.raises(ValueError):
        Fusion(method="borda")


# -- the benchmark's metrics ---------------------------------------------------------------------------

def _load(path: Path, name: str):
    """bench/ and examples/ are not installed: load their modules from the file, whatever the cwd."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load(REPO / "bench" / "retrieval_quality.py", "bench_retrieval_quality")


@pytest.fixture(scope="module")
def corpus():
    return _load(REPO / "examples" / "networkx_algorithms_corpus.py", "networkx_algorithms_corpus")


def test_gold_within_a_word_budget(bench):
    gold = bench.Gold(["The target is only evaluated once."], threshold=1.0)  # exact, for round numbers
    chunks = ["ten words of filler text that say nothing at all",
              "Intro words. The target is\nonly evaluated once. More words follow after it."]
    m = bench.case_metrics(chunks, gold)
    assert m["words"] == 10 + 8 and m["rr"] == 0.5  # all 10 words of the first chunk, 8 of the second hold the passage
    assert m["recall@4"] == 1.0
    # A chunk cut before the passage ends is not a hit: a shorter text never "holds" a longer passage.
    assert gold.words_needed("The target is") is None and gold.words_needed("filler") is None
    summary = bench.summarize([m, bench.case_metrics(chunks[:1], gold)])
    assert summary["hits@450"] == 1 and summary["mrr"] == 0.25 and summary["n"] == 2


def test_benchmark_losses_count_cases_that_get_worse(bench):
    base = [{"words": 100, "rr": 1.0}, {"words": 500, "rr": 0.5}]
    assert bench.losses(base, base) == 0
    assert bench.losses(base, [{"words": 100, "rr": 0.5}, {"words": 500, "rr": 0.5}]) == 1   # ranked lower
    assert bench.losses(base, [{"words": 100, "rr": 1.0}, {"words": 950, "rr": 0.5}]) == 1   # misses the 900-word budget
    assert bench.losses(base, [{"words": 50, "rr": 1.0}, {"words": 400, "rr": 1.0}]) == 0


# -- the held-out suite --------------------------------------------------------------------------------

def test_networkx_suite_is_written_from_its_corpus_verbatim(corpus):
    from llmfti.evaluation.metrics import normalize_ws
    from llmfti.evaluation.suites import load_suite

    suite = load_suite(REPO / "evals" / "networkx-algorithms")
    assert len(suite.cases) >= 40 and all(c.reference_contexts and c.source_ids for c in suite.cases)
    docs = {f"{name}.md": normalize_ws(corpus.function_to_markdown(name, obj)) for name, obj in corpus.functions().items()}
    assert len(docs) > 300 and all(src in docs for c in suite.cases for src in c.source_ids)  # doc ids as ingest names them
    found = [any(normalize_ws(p) in docs.get(src, "") for src in c.source_ids) for c in suite.cases for p in c.reference_contexts]
    # Verbatim from this NetworkX's docstrings; another release may reword a few.
    assert sum(found) / len(found) >= 0.9
    assert len({c.question for c in suite.cases}) == len(suite.cases)
    python_ref = [json.loads(line)["question"] for line in (REPO / "evals" / "python-reference" / "cases.jsonl").read_text().splitlines() if line.strip()]
    assert not set(python_ref) & {c.question for c in suite.cases}


def test_networkx_corpus_writer(corpus, tmp_path):
    files = corpus.write_corpus(tmp_path)
    text = (tmp_path / "pagerank.md").read_text()
    assert len(files) > 300 and text.startswith("# networkx.pagerank\n") and "\n## Parameters\n" in text and "backend" not in text.split("\n")[2]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert [f.stat().st_mtime_ns for f in corpus.write_corpus(tmp_path)] == mtimes  # unchanged files are not rewritten
