"""The inference log's table: its name, Arrow schema and the columns stored as JSON text or as a
query vector (llmfti.store.inference_log writes it, log_reads reads it, log_maintenance keeps it small)."""

from __future__ import annotations

LOG_TABLE = "_inference_log"


def log_schema():
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("request_id", pa.string(), nullable=False), pa.field("time", ts), pa.field("deployment", pa.string()),
            pa.field("deployment_version", pa.int32()), pa.field("model", pa.string()), pa.field("feature_group", pa.string()),
            pa.field("commit", pa.int64()), pa.field("commit_evaluated", pa.bool_()), pa.field("prompt_mode", pa.string()), pa.field("request", pa.string()), pa.field("features", pa.string()),
            pa.field("retrieved", pa.string()), pa.field("prompt_fingerprint", pa.string()), pa.field("prompt_text", pa.string()),
            pa.field("output", pa.string()), pa.field("prompt_tokens", pa.int32()), pa.field("completion_tokens", pa.int32()),
            pa.field("timings_ms", pa.string()), pa.field("status", pa.string()), pa.field("error", pa.string()),
            # Variable length: each feature-group version has its own embedder dimension.
            pa.field("query_vector", pa.list_(pa.float32())),
            pa.field("origin", pa.string()),  # online | batch (rows of older logs: null, i.e. online)
        ]
    )


JSON_FIELDS = ("request", "features", "retrieved", "timings_ms")
VECTOR_FIELD = "query_vector"
