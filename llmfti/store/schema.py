"""Arrow schemas of the store's tables. Feature-group tables carry `event_time` and `ingested_at`
on every row; record feature groups (instruction data) add their typed fields."""

from __future__ import annotations

import pyarrow as pa

from llmfti.tables import TS


def feature_group_schema(dim: int, kind: str = "documents") -> pa.Schema:
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
