"""LanceDB system tables of the model registry, in the project home's database.

- `_base_models`: one row per imported base model (key: name).
- `_model_versions`: one row per model version (key: NAME:VERSION); status is the only mutable field.
- `_model_evals`: append-only eval results per version (filled by the eval gate).

JSON columns hold free-form dicts (metrics, lineage, config, artifact hashes).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from llmfti.home import ProjectHome
from llmfti.store.feature_store import sql_quote  # noqa: F401  (registry modules import it from here)
from llmfti.store.schema import TS

BASE_MODELS, MODEL_VERSIONS, MODEL_EVALS = "_base_models", "_model_versions", "_model_evals"

BASE_MODELS_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("source_kind", pa.string()),  # folder | gguf | hub
        pa.field("source_sha256", pa.string()),  # GGUF file or source weights: re-import is a no-op
        pa.field("path", pa.string()),  # relative to the project home
        pa.field("weights_sha256", pa.string()),
        pa.field("files", pa.string()),  # JSON {relative path: sha256} of every file in the folder
        pa.field("tokenizer_fingerprint", pa.string()),
        pa.field("chat_template_fingerprint", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("model_type", pa.string()),
        pa.field("parameters", pa.int64()),
        pa.field("context_length", pa.int64()),
        pa.field("license", pa.string()),
        pa.field("created_at", TS),
    ]
)

MODEL_VERSIONS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # NAME:VERSION
        pa.field("name", pa.string()),
        pa.field("version", pa.int32()),
        pa.field("base_model", pa.string()),
        pa.field("adapter_sha256", pa.string()),  # null: the base model served as is
        pa.field("encoder_fingerprint", pa.string()),
        pa.field("fingerprint_components", pa.string()),  # JSON
        pa.field("prompt_template", pa.string()),
        pa.field("prompt_template_version", pa.int32()),
        pa.field("max_prompt_tokens", pa.int32()),
        pa.field("max_answer_tokens", pa.int32()),
        pa.field("training_dataset", pa.string()),
        pa.field("lineage", pa.string()),  # JSON, frozen at registration
        pa.field("metrics", pa.string()),  # JSON
        pa.field("config", pa.string()),  # JSON: what the caller says made it (hyper-parameters, ...)
        pa.field("files", pa.string()),  # JSON {relative path: sha256} of the version folder
        pa.field("status", pa.string()),
        pa.field("created_at", TS),
        pa.field("status_changed_at", TS),
    ]
)

MODEL_EVALS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("result", pa.string()),  # JSON
        pa.field("recorded_at", TS),
    ]
)

_SCHEMAS = {BASE_MODELS: BASE_MODELS_SCHEMA, MODEL_VERSIONS: MODEL_VERSIONS_SCHEMA, MODEL_EVALS: MODEL_EVALS_SCHEMA}
JSON_COLUMNS = {"files", "fingerprint_components", "lineage", "metrics", "config", "result"}


class RegistryTables:
    """Thin access to the three tables; created on first use (exist_ok makes concurrent first use safe)."""

    def __init__(self, home: ProjectHome):
        self.home = home
        self._db = None

    def table(self, name: str):
        if self._db is None:
            self._db = self.home.connect()
        return self._db.create_table(name, schema=_SCHEMAS[name], exist_ok=True)

    def rows(self, name: str, where: str | None = None) -> list[dict[str, Any]]:
        query = self.table(name).search()
        if where:
            query = query.where(where)
        out = query.limit(None).to_list()
        for r in out:
            for k in JSON_COLUMNS & r.keys():
                r[k] = json.loads(r[k]) if r[k] else {}
        return out

    def insert(self, name: str, row: dict[str, Any], key: str | None = None) -> None:
        """Append a row; with `key`, insert only if no row has that key (first writer wins)."""
        data = {k: json.dumps(v, sort_keys=True, default=str) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
        table = pa.Table.from_pylist([data], schema=_SCHEMAS[name])
        if key:
            self.table(name).merge_insert(key).when_not_matched_insert_all().execute(table)
        else:
            self.table(name).add(table)

    def update(self, name: str, where: str, values: dict[str, Any]) -> None:
        self.table(name).update(where=where, values=values)
