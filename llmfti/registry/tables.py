"""LanceDB system tables of the model registry, in the project home's database.

- `_base_models`: one row per imported base model (key: name).
- `_model_versions`: one row per model version (key: NAME:VERSION); status is the only mutable field.
Eval results live in `_eval_results` (`llmfti.registry.evals`).

JSON columns hold free-form dicts (metrics, lineage, config, artifact hashes).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from llmfti.home import ProjectHome
from llmfti.tables import TS, SystemTable

BASE_MODELS, MODEL_VERSIONS = "_base_models", "_model_versions"

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

_SCHEMAS = {BASE_MODELS: BASE_MODELS_SCHEMA, MODEL_VERSIONS: MODEL_VERSIONS_SCHEMA}
JSON_COLUMNS = {"files", "fingerprint_components", "lineage", "metrics", "config"}


class RegistryTables:
    """The registry's system tables (`llmfti.tables.SystemTable`), JSON columns decoded to dicts."""

    def __init__(self, home: ProjectHome):
        self.home = home
        self._db = None
        self._tables: dict[str, SystemTable] = {}

    @property
    def db(self):
        if self._db is None:
            self._db = self.home.connect()
        return self._db

    def table(self, name: str) -> SystemTable:
        if name not in self._tables:
            self._tables[name] = SystemTable(self.home, name, _SCHEMAS[name], db=self.db)
        return self._tables[name]

    def rows(self, name: str, where: str | None = None) -> list[dict[str, Any]]:
        out = self.table(name).query(where)
        for r in out:
            for k in JSON_COLUMNS & r.keys():
                r[k] = json.loads(r[k]) if r[k] else {}
        return out

    def insert(self, name: str, row: dict[str, Any], key: str | None = None) -> None:
        """Append a row; with `key`, insert only if no row has that key (first writer wins)."""
        data = {k: json.dumps(v, sort_keys=True, default=str) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
        if key:
            self.table(name).insert_unique(data, key)
        else:
            self.table(name).add(data)

    def update(self, name: str, where: str, values: dict[str, Any]) -> None:
        self.table(name).update(where, values)
