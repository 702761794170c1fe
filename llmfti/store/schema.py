"""Arrow schemas of the store's tables. Feature-group tables carry `event_time` and `ingested_at`
on every row; record feature groups (instruction data) and preference feature groups (prompt, chosen,
rejected) add their typed fields. Scores of records are nullable float columns `score_<scorer>`
(`llmfti.transforms.scoring`), added to a table when a scorer first runs on it."""

from __future__ import annotations

import pyarrow as pa

from llmfti.tables import TS


SCORE_PREFIX = "score_"


def score_field(column: str) -> pa.Field:
    """A score column: float64, null where a row was never scored (rows written before the scorer ran)."""
    return pa.field(column, pa.float64())


def score_columns(schema: pa.Schema) -> list[str]:
    """The score columns of a feature-group table's schema, in schema order."""
    return [f.name for f in schema if f.name.startswith(SCORE_PREFIX)]


def feature_group_schema(dim: int, kind: str = "documents", scores: list[str] | tuple[str, ...] = ()) -> pa.Schema:
    """The table schema of a feature-group version of `kind`, with score columns `scores` appended."""
    fields = [
        pa.field("chunk_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("chunk_index", pa.int32()),
        pa.field("heading_path", pa.string()),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("doc_hash", pa.string()),
        pa.field("event_time", TS),
        pa.field("ingested_at", TS),
        pa.field("metadata", pa.string()),  # JSON: free-form per document
        pa.field("run_id", pa.string()),
    ]
    if kind == "records":
        fields += [
            pa.field("question", pa.string()),
            pa.field("answer", pa.string()),
            pa.field("context_ids", pa.list_(pa.string())),
        ]
    elif kind == "preferences":
        fields += [
            pa.field("question", pa.string()),  # the prompt's question (JSONL `prompt` or `question`)
            pa.field("chosen", pa.string()),
            pa.field("rejected", pa.string()),
            pa.field("context_ids", pa.list_(pa.string())),
        ]
    fields += [score_field(c) for c in scores]
    return pa.schema(fields)


FG_META_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # NAME:VERSION
        pa.field("name", pa.string()),
        pa.field("version", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("table_name", pa.string()),
        pa.field("embedder_id", pa.string()),
        pa.field("embedder_fingerprint", pa.string()),
        pa.field("embedder_dtype", pa.string()),
        pa.field("dimension", pa.int32()),
        pa.field("chunker", pa.string()),  # JSON of ChunkerConfig
        pa.field("chunker_fingerprint", pa.string()),
        pa.field("config", pa.string()),  # JSON of the FeatureConfig, dtype resolved
        pa.field("description", pa.string()),
        pa.field("created_at", TS),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("feature_group", pa.string()),
        pa.field("source", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("quarantined_at", TS),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("feature_group", pa.string()),
        pa.field("commit", pa.int64()),
        pa.field("started_at", TS),
        pa.field("finished_at", TS),
        pa.field("summary", pa.string()),  # JSON of IngestSummary
    ]
)
