"""The optional LLM judge: Ragas Faithfulness, AnswerRelevancy and FactualCorrectness, run N times.

A judge is configured by `judge:` in gate.yaml or by the environment (which wins, so CI can switch
one on without editing the suite):

    LLMFTI_JUDGE_BASE_URL=http://127.0.0.1:8001/v1  LLMFTI_JUDGE_MODEL=qwen2.5-7b-instruct
    LLMFTI_JUDGE_RUNS=5  LLMFTI_JUDGE_API_KEY=...   (key optional; its variable is `api_key_env`)

Any OpenAI-compatible server works (vLLM, llama.cpp server, a hosted API); a local model can also
be passed in-process as any Ragas `InstructorBaseRagasLLM` (`RagasJudge(settings, emb, llm=...)`).
Judges are noisy, so each metric's score per run is the mean over cases, and the gate reads the
lower bound of a t-interval over the N run means (`confidence_interval`).
"""

from __future__ import annotations

import logging
import math
import os

from llmfti.evaluation.suites import JUDGED_METRICS, JudgeSettings
from llmfti.logs import get_logger

logger = get_logger(__name__)


def resolve_judge(settings: JudgeSettings, env: dict | None = None) -> JudgeSettings | None:
    """The effective judge settings, or None when no judge model is named anywhere."""
    env = os.environ if env is None else env
    update = {}
    if env.get("LLMFTI_JUDGE_BASE_URL"):
        update["base_url"] = env["LLMFTI_JUDGE_BASE_URL"]
    if env.get("LLMFTI_JUDGE_MODEL"):
        update["model"] = env["LLMFTI_JUDGE_MODEL"]
    if env.get("LLMFTI_JUDGE_RUNS"):
        update["runs"] = int(env["LLMFTI_JUDGE_RUNS"])
    resolved = JudgeSettings.model_validate({**settings.model_dump(), **update})
    return resolved if resolved.model else None


def confidence_interval(values: list[float], confidence: float = 0.95) -> dict:
    """Mean and two-sided Student-t interval of `values` (the per-run means of one judged metric).
    Too few values for an interval give (-inf, inf), which can neither pass nor fail a gate."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return {"mean": None, "lower": None, "upper": None, "n": 0, "std": None}
    mean = sum(vals) / n
    if n < 2:
        return {"mean": mean, "lower": -math.inf, "upper": math.inf, "n": n, "std": None}
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "lower": mean - half, "upper": mean + half, "n": n, "std": std}


class RagasJudge:
    """Scores one case with the judged Ragas metrics (one run). Build once per eval run."""

    def __init__(self, settings: JudgeSettings, embeddings, llm=None):
        from ragas.metrics.collections import AnswerRelevancy, FactualCorrectness, Faithfulness

        self.settings = settings
        if llm is None:
            from openai import AsyncOpenAI
            from ragas.llms import llm_factory

            # Local servers ignore the key; the OpenAI client refuses to start without one.
            client = AsyncOpenAI(base_url=settings.base_url, api_key=os.environ.get(settings.api_key_env) or "not-needed")
            llm = llm_factory(settings.model, client=client)
        self.metrics = {
            "faithfulness": Faithfulness(llm=llm),
            "answer_relevancy": AnswerRelevancy(llm=llm, embeddings=embeddings),
            "factual_correctness": FactualCorrectness(llm=llm),
        }

    @property
    def name(self) -> str:
        return f"{self.settings.model}@{self.settings.base_url or 'in-process'}"

    def score(self, case, *, answer: str, contexts: list[str]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in JUDGED_METRICS:
            kwargs = {
                "faithfulness": {"user_input": case.question, "response": answer, "retrieved_contexts": contexts},
                "answer_relevancy": {"user_input": case.question, "response": answer},
                "factual_correctness": {"response": answer, "reference": case.reference},
            }[name]
            if name == "faithfulness" and not contexts:
                out[name] = 0.0  # nothing to be faithful to: an unsupported answer by definition
                continue
            try:
                out[name] = float(self.metrics[name].score(**kwargs).value)
            except Exception as exc:  # a malformed judge reply loses this one score, not the whole eval run
                logger.warning("judge %s could not score %s for case %r (the score is dropped): %s: %s",
                               self.name, name, getattr(case, "id", "?"), type(exc).__name__, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
                out[name] = None
        return out


def run_judge(judge, cases_outputs: list[tuple], runs: int) -> tuple[dict[str, list[float | None]], list[dict]]:
    """Run `judge` `runs` times over (case, answer, contexts) triples. Returns the per-run mean of each
    metric and, per case, its per-run scores."""
    per_case = [{m: [] for m in JUDGED_METRICS} for _ in cases_outputs]
    run_means: dict[str, list[float | None]] = {m: [] for m in JUDGED_METRICS}
    for _ in range(runs):
        this_run: dict[str, list[float]] = {m: [] for m in JUDGED_METRICS}
        for i, (case, answer, contexts) in enumerate(cases_outputs):
            for m, v in judge.score(case, answer=answer, contexts=contexts).items():
                per_case[i][m].append(v)
                if v is not None and not math.isnan(v):
                    this_run[m].append(v)
        for m, vals in this_run.items():
            run_means[m].append(sum(vals) / len(vals) if vals else None)
    return run_means, per_case
