"""Eval suites: `evals/SUITE/cases.jsonl` (the questions) + `evals/SUITE/gate.yaml` (the thresholds),
versioned with the code. The suite version is a content hash of both, so an eval result names
exactly the questions and thresholds it was judged against.

    suite = load_suite("python-reference")        # evals/python-reference/, or a folder path
    suite.version                                  # e.g. "3f2a9c0d1e4b5a67"

One case per line: {"id", "question", "reference", "reference_contexts": [...], "source_ids": [...]};
`source_ids` are feature-group doc ids (file names relative to the corpus root, e.g. "with.md").
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from llmfti.config.base import StrictModel
from llmfti.errors import ConfigError, NotFoundError
from llmfti.hashing import sha256_json

SUITES_DIR = "evals"
# Deterministic metrics the gate may threshold (mean over cases); each is computed for every case.
DETERMINISTIC_METRICS = ("hit_at_k", "mrr", "non_llm_context_recall", "non_llm_context_precision_with_reference", "rouge_score", "semantic_similarity")
# LLM-judged metrics: computed only when a judge is configured, N times, gated on a CI lower bound.
JUDGED_METRICS = ("faithfulness", "answer_relevancy", "factual_correctness")


class EvalCase(StrictModel):
    id: str = Field(description="Stable case id, unique in the suite (shown in reports).")
    question: str = Field(min_length=1, description="Sent as the request's `question`.")
    reference: str = Field(min_length=1, description="Reference answer, short, written from the source text.")
    reference_contexts: list[str] = Field(default_factory=list, description="Verbatim passages the answer comes from.")
    source_ids: list[str] = Field(default_factory=list, description="doc_ids of the documents holding the answer.")

    @model_validator(mode="after")
    def _has_ground_truth(self):
        if not self.reference_contexts and not self.source_ids:
            raise ValueError("a case needs reference_contexts or source_ids (or both)")
        return self


def _only_known(thresholds: dict[str, float], known, what: str) -> dict[str, float]:
    bad = sorted(set(thresholds) - set(known))
    if bad:
        raise ValueError(f"unknown {what}(s) {bad}; known: {list(known)}")
    return thresholds


class JudgeSettings(StrictModel):
    """LLM judge for Faithfulness, AnswerRelevancy, FactualCorrectness. Off unless a model is named here
    or in LLMFTI_JUDGE_BASE_URL / LLMFTI_JUDGE_MODEL (the environment wins, so CI can switch it on)."""

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint ending in /v1.")
    model: str | None = Field(None, description="Served model name.")
    api_key_env: str = Field("LLMFTI_JUDGE_API_KEY", description="Environment variable holding the API key (optional).")
    runs: int = Field(3, ge=2, le=20, description="Times each judged metric runs; the gate uses the CI lower bound over runs.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Two-sided confidence level of the interval.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Judged metric -> minimum CI lower bound.")

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        return _only_known(v, JUDGED_METRICS, "judged metric")


class ChallengerSettings(StrictModel):
    """How a challenger tuple is compared with the active one it would replace (paired, per case)."""

    tolerance: float = Field(0.02, ge=0, le=1, description="A metric fails only when the challenger is worse by more than this, with confidence.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Two-sided level of the paired bootstrap interval.")
    resamples: int = Field(2000, ge=200, le=100000, description="Bootstrap resamples (seeded: the verdict is reproducible).")


class GateConfig(StrictModel):
    """gate.yaml: hard thresholds on deterministic metrics, CI-bound thresholds on judged ones."""

    description: str = Field("", description="Free text.")
    thresholds: dict[str, float] = Field(description="Deterministic metric -> minimum mean over cases (hard threshold).")
    context_match_threshold: float = Field(
        0.8, gt=0, le=1, description="Similarity (rapidfuzz partial ratio) above which a retrieved chunk holds a reference passage.")
    worst_cases: int = Field(5, ge=0, le=100, description="Worst cases listed in the report.")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    challenger: ChallengerSettings = Field(default_factory=ChallengerSettings)

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("a gate needs at least one threshold")
        return _only_known(v, DETERMINISTIC_METRICS, "metric")


class Suite:
    """A loaded, validated suite."""

    def __init__(self, name: str, path: Path, cases: list[EvalCase], gate: GateConfig):
        self.name, self.path, self.cases, self.gate = name, path, cases, gate
        # Hash the parsed content, not the bytes: reformatting a file does not make a new version.
        self.version = sha256_json({"cases": [c.model_dump() for c in cases], "gate": gate.model_dump()})[:16]

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, version={self.version!r}, cases={len(self.cases)})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def suite_path(suite: str | Path, root: str | Path | None = None) -> Path:
    """A folder path as given, else `evals/SUITE` under `root` (default: the current directory)."""
    p = Path(suite)
    if p.is_dir():
        return p
    candidate = Path(root or ".") / SUITES_DIR / str(suite)
    if candidate.is_dir():
        return candidate
    raise NotFoundError(f"eval suite {suite!r} not found (looked for a folder {p} and {candidate})", hint="suites live in evals/NAME/")


def load_suite(suite: str | Path, root: str | Path | None = None) -> Suite:
    import yaml

    path = suite_path(suite, root)
    cases_file, gate_file = path / "cases.jsonl", path / "gate.yaml"
    for f in (cases_file, gate_file):
        if not f.is_file():
            raise ConfigError(f"eval suite {path}: missing {f.name}")
    cases: list[EvalCase] = []
    for n, line in enumerate(cases_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            cases.append(EvalCase.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ConfigError(f"{cases_file}:{n}: invalid case: {_short(exc)}") from None
    if not cases:
        raise ConfigError(f"{cases_file}: no cases")
    dupes = sorted({c.id for c in cases if sum(d.id == c.id for d in cases) > 1})
    if dupes:
        raise ConfigError(f"{cases_file}: duplicate case ids {dupes}")
    try:
        gate = GateConfig.model_validate(yaml.safe_load(gate_file.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{gate_file}: invalid gate: {_short(exc)}") from None
    return Suite(path.resolve().name, path, cases, gate)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
    return str(exc)
