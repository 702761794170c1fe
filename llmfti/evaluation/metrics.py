"""Deterministic per-case metrics: retrieval hit@k and MRR on source ids, and Ragas's offline metrics
(NonLLMContextRecall, NonLLMContextPrecisionWithReference, RougeScore, SemanticSimilarity).

    scorer = DeterministicScorer(embedder, context_match_threshold=0.8)
    scorer.score(case, answer="...", contexts=["chunk text", ...], cited_doc_ids=["with.md", ...])

SemanticSimilarity embeds with the deployment's own local embedder (wrapped as a Ragas embeddings
object), so nothing leaves the machine. Ragas is imported lazily: `import llmfti` stays light.
"""

from __future__ import annotations

import os
import re
import warnings

# Ragas reports usage to a remote endpoint unless told not to; evals must work offline and quietly.
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

_WS = re.compile(r"\s+")

# Which pipeline stage each metric judges, so a failing gate names the stage to look at. Retrieval
# metrics read only what was retrieved (feature group, embedder, chunker, retrieval settings);
# generation metrics read the answer (model, prompt template, generation settings).
METRIC_STAGES = {
    "retrieval": ("hit_at_k", "mrr", "non_llm_context_recall", "non_llm_context_precision_with_reference"),
    "generation": ("rouge_score", "semantic_similarity", "faithfulness", "answer_relevancy", "factual_correctness"),
}


def stage_of(metric: str) -> str:
    """The stage of a metric (a champion comparison's "champion:METRIC" too); unknown ones are "other"."""
    name = metric.split(":", 1)[-1]
    return next((stage for stage, names in METRIC_STAGES.items() if name in names), "other")


def stage_verdicts(checks: list[dict], worse_than_champion=()) -> dict:
    """Per stage: the gated metrics, whether they all pass, and which fail (a metric on which the
    challenger is significantly worse than the champion counts as `champion:METRIC`).

        {"retrieval": {"gated": [...], "passed": False, "failing": ["hit_at_k", "mrr"]},
         "generation": {"gated": [...], "passed": True, "failing": []}}
    """
    out: dict = {}
    for stage in METRIC_STAGES:
        mine = [c for c in checks if stage_of(c["metric"]) == stage]
        failing = [c["metric"] for c in mine if c["status"] not in ("pass", "skipped")]
        failing += [f"champion:{m}" for m in worse_than_champion if stage_of(m) == stage]
        out[stage] = {"gated": [c["metric"] for c in mine if c["status"] != "skipped"], "passed": not failing, "failing": failing}
    return out


def failing_stage(stages: dict) -> str | None:
    """The first failing stage in pipeline order. Generation reads what retrieval returned, so when
    both fail the regression starts in retrieval (fix that first, then re-evaluate generation)."""
    return next((stage for stage in METRIC_STAGES if stage in stages and not stages[stage]["passed"]), None)


def normalize_ws(text: str) -> str:
    """Chunkers and pydoc's line wrapping differ only in whitespace; compare text without it mattering."""
    return _WS.sub(" ", text).strip()


def retrieval_scores(cited_doc_ids: list[str], source_ids: list[str]) -> dict[str, float]:
    """hit@k: any of the k cited docs is a source; MRR: 1/rank of the first one (0 if none)."""
    wanted = set(source_ids)
    for rank, doc_id in enumerate(cited_doc_ids, 1):
        if doc_id in wanted:
            return {"hit_at_k": 1.0, "mrr": 1.0 / rank}
    return {"hit_at_k": 0.0, "mrr": 0.0}


def ragas_embeddings(embedder):
    """Wrap a `llmfti.models.embedders.Embedder` (normalised vectors, local) as a Ragas embeddings object."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalEmbeddings(BaseRagasEmbedding):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def embed_text(self, text: str, **kwargs) -> list[float]:
            return self.inner.embed([text])[0].tolist()

        async def aembed_text(self, text: str, **kwargs) -> list[float]:
            return self.embed_text(text)

        def embed_texts(self, texts: list[str], **kwargs) -> list[list[float]]:
            return self.inner.embed(list(texts)).tolist()  # one batch, not one call per text

        async def aembed_texts(self, texts: list[str], **kwargs) -> list[list[float]]:
            return self.embed_texts(texts)

    return LocalEmbeddings(embedder)


def _partial_similarity_metric():
    """A Ragas string-similarity metric that scores how well the shorter text occurs inside the longer
    one (rapidfuzz partial ratio). Ragas's default (whole-string Levenshtein) compares a one-sentence
    reference passage with a ~200-token chunk and can never pass its threshold even when the chunk
    contains the passage verbatim; the recall/precision logic of the metrics is unchanged."""
    from dataclasses import dataclass

    from rapidfuzz import fuzz
    from ragas.metrics.base import SingleTurnMetric

    @dataclass
    class PartialStringSimilarity(SingleTurnMetric):
        name: str = "partial_string_similarity"

        def __post_init__(self):
            from ragas.metrics.base import MetricType

            self._required_columns = {MetricType.SINGLE_TURN: {"reference", "response"}}

        def init(self, run_config) -> None:
            pass

        async def _single_turn_ascore(self, sample, callbacks=None) -> float:
            return fuzz.partial_ratio(normalize_ws(sample.reference), normalize_ws(sample.response)) / 100.0

        async def _ascore(self, row, callbacks=None) -> float:
            from ragas import SingleTurnSample

            return await self._single_turn_ascore(SingleTurnSample(**row), callbacks)

    return PartialStringSimilarity()


class DeterministicScorer:
    """Scores one case's output with the deterministic metrics. Build once per eval run."""

    def __init__(self, embedder, context_match_threshold: float = 0.8):
        with warnings.catch_warnings():
            # ragas 0.4 deprecates the `ragas.metrics` import path in favour of `collections`, which has
            # no non-LLM context metrics yet; the legacy classes are the supported way to get them.
            warnings.simplefilter("ignore", DeprecationWarning)
            from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
        from ragas.metrics.collections import RougeScore, SemanticSimilarity

        similarity = _partial_similarity_metric()
        self.recall = NonLLMContextRecall(threshold=context_match_threshold)
        self.recall._distance_measure = similarity
        self.precision = NonLLMContextPrecisionWithReference(threshold=context_match_threshold, distance_measure=similarity)
        self.rouge = RougeScore(rouge_type="rougeL", mode="fmeasure")
        self.embeddings = ragas_embeddings(embedder)
        self.semantic = SemanticSimilarity(embeddings=self.embeddings)

    def score(self, case, *, answer: str, contexts: list[str], cited_doc_ids: list[str]) -> dict[str, float]:
        from ragas import SingleTurnSample

        out = retrieval_scores(cited_doc_ids, case.source_ids) if case.source_ids else {}
        if case.reference_contexts:
            if contexts:
                sample = SingleTurnSample(user_input=case.question, retrieved_contexts=contexts, reference_contexts=case.reference_contexts)
                out["non_llm_context_recall"] = float(self.recall.single_turn_score(sample))
                out["non_llm_context_precision_with_reference"] = float(self.precision.single_turn_score(sample))
            else:  # nothing retrieved (k=0): Ragas asserts on empty lists; the honest score is 0
                out["non_llm_context_recall"] = out["non_llm_context_precision_with_reference"] = 0.0
        out["rouge_score"] = float(self.rouge.score(reference=case.reference, response=answer or " ").value)
        out["semantic_similarity"] = max(0.0, float(self.semantic.score(reference=case.reference, response=answer or " ").value))
        return {k: round(v, 6) for k, v in out.items()}
