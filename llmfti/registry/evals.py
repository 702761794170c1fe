"""Eval results stored against the exact tuple they judged (storage only; the evaluation pipeline
`llmfti.pipelines.evaluation` produces them, promotion reads them).

`_eval_results`: one append-only row per eval run, with the columns promotion filters on (model,
tuple key, suite and its version, pass/fail) and the typed `EvalRecord` as JSON.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from llmfti.tables import TS, Record, SystemTable, sql_quote

EVAL_RESULTS = "_eval_results"
LEGACY_EVALS = "_model_evals"  # 0.1 homes: free-form dicts per model version, still read


class EvalRecord(Record):
    """One eval run's summary: which tuple, which suite version, the verdict and the metrics."""

    model_config = {"extra": "forbid"}

    suite: str = Field(description="Suite name (evals/NAME).")
    suite_version: str | None = Field(None, description="Content hash of the suite's cases and gate.")
    passed: bool = Field(description="Whether every gated metric passed.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Mean of each metric over the cases.")
    failing: list[str] = Field(default_factory=list, description="Metrics below their thresholds.")
    checks: list[dict[str, Any]] = Field(default_factory=list, description="Per-metric gate checks.")
    model: str | None = Field(None, description="Model version NAME:N.")
    deployment: str | None = None
    deployment_version: int | None = None
    feature_group: str | None = None
    commit: str | None = Field(None, description="Feature-group commit every case read.")
    prompt_fingerprint: str | None = None
    tuple_key: str | None = Field(None, description="Hash of everything that decides the answers (llmfti.registry.deployments.tuple_key).")
    judge: str | None = None
    judge_runs: dict[str, list[float | None]] | None = None
    n_cases: int | None = None
    duration_s: float | None = None
    at: str | None = Field(None, description="When the run finished (ISO-8601).")
    artifact: str | None = Field(None, description="Per-case results, relative to the project home.")
    comparison: dict[str, Any] | None = Field(None, description="Champion/challenger comparison, when one was made.")
    stages: dict[str, Any] | None = Field(None, description="Per-stage verdict (retrieval, generation): which pipeline a failure starts in.")
    failing_stage: str | None = Field(None, description="The first failing stage, if any.")
    recorded_at: datetime | None = None


class _Row(Record):
    JSON_FIELDS: ClassVar = ("result",)
    key: str
    tuple_key: str | None = None
    suite: str | None = None
    suite_version: str | None = None
    deployment: str | None = None
    passed: bool | None = None
    result: dict
    recorded_at: datetime


SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("tuple_key", pa.string()), pa.field("suite", pa.string()),
    pa.field("suite_version", pa.string()), pa.field("deployment", pa.string()), pa.field("passed", pa.bool_()),
    pa.field("result", pa.string()), pa.field("recorded_at", TS),
])


class EvalStore:
    def __init__(self, home, db=None):
        self.home = home
        self.table = SystemTable(home, EVAL_RESULTS, SCHEMA, _Row, db=db)
        self._legacy = SystemTable(home, LEGACY_EVALS, pa.schema([]), db=db)

    def record(self, model_ref: str, record: EvalRecord) -> EvalRecord:
        now = datetime.now(timezone.utc)
        record = record.model_copy(update={"model": record.model or model_ref, "recorded_at": now})
        if record.artifact and getattr(self.home, "remote", False):
            # Per-case results, relative to the home: on an object-store home other hosts (a champion
            # comparison, a report) read them from the bucket, so they go there before the row.
            self.home.publish(self.home.root / record.artifact)
        self.table.add(_Row(key=model_ref, tuple_key=record.tuple_key, suite=record.suite, suite_version=record.suite_version,
                            deployment=record.deployment, passed=record.passed,
                            result=record.model_dump(mode="json", exclude={"recorded_at"}), recorded_at=now))
        return record

    def for_model(self, model_ref: str, *, tuple_key: str | None = None) -> list[EvalRecord]:
        """Eval records of a model version (of one tuple when given), oldest first."""
        where = f"key = {sql_quote(model_ref)}" + (f" AND tuple_key = {sql_quote(tuple_key)}" if tuple_key else "")
        out = [EvalRecord.model_validate({**r.result, "recorded_at": r.recorded_at}) for r in self.table.rows(where)]
        out += self._legacy_records(model_ref, tuple_key)
        return sorted(out, key=lambda e: e.recorded_at)

    def _legacy_records(self, model_ref: str, tuple_key: str | None) -> list[EvalRecord]:
        import json

        out = []
        for row in self._legacy.query(f"key = {sql_quote(model_ref)}"):
            data = json.loads(row["result"]) if row.get("result") else {}
            if tuple_key and data.get("tuple_key") != tuple_key:
                continue
            known = {k: v for k, v in data.items() if k in EvalRecord.model_fields}
            known.setdefault("suite", "unknown")
            known.setdefault("passed", False)
            try:
                out.append(EvalRecord.model_validate({**known, "recorded_at": row["recorded_at"]}))
            except ValueError:
                continue  # a hand-written record that cannot qualify anything
        return out
