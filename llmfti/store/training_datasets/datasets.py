"""TrainingDatasets: versioned training-dataset tables of one project home, with their lineage.

Per version: a LanceDB table `td__NAME__vN` (one row per example: ids, labels, split, the question,
answer and context ids it came from, the source record's event_time and ingested_at; a preference
dataset, lineage `kind: preferences`, holds prompt_ids, chosen_ids and rejected_ids instead), a row in
`_training_datasets` (lineage JSON + content hash; written last, so it is the commit point), and
`artifacts/datasets/NAME/N/` holding dataset.json (the lineage: artifacts carry their config), the
pinned tokenizer and prompt template. Versions are allocated by an atomic mkdir (see
`llmfti.home.claim_version_dir`; a conditional put on an object-store home, whose version folders are
uploaded before the row and fetched before they are read), so concurrent creators never share a number.

Storage only: `llmfti.pipelines.training_dataset` builds datasets and calls `write`.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pyarrow as pa

from llmfti.errors import ConfigError, NotFoundError
from llmfti.store.training_datasets.spec import parse_dataset_ref
from llmfti.tables import TS, SystemTable, sql_quote, table_names

META = "_training_datasets"
META_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("name", pa.string()), pa.field("version", pa.int32()),
    pa.field("table_name", pa.string()), pa.field("content_hash", pa.string()), pa.field("rows", pa.int64()),
    pa.field("lineage", pa.string()), pa.field("created_at", TS),
])
EXAMPLE_SCHEMA = pa.schema([
    pa.field("position", pa.int32()), pa.field("example_id", pa.string(), nullable=False), pa.field("doc_id", pa.string()), pa.field("split", pa.string()),
    pa.field("question", pa.string()), pa.field("answer", pa.string()), pa.field("context_ids", pa.list_(pa.string())),
    pa.field("input_ids", pa.list_(pa.int32())), pa.field("labels", pa.list_(pa.int32())), pa.field("prompt_length", pa.int32()),
    pa.field("event_time", TS), pa.field("ingested_at", TS),
])
PREFERENCE_SCHEMA = pa.schema([
    pa.field("position", pa.int32()), pa.field("example_id", pa.string(), nullable=False), pa.field("doc_id", pa.string()), pa.field("split", pa.string()),
    pa.field("question", pa.string()), pa.field("chosen", pa.string()), pa.field("rejected", pa.string()), pa.field("context_ids", pa.list_(pa.string())),
    pa.field("prompt_ids", pa.list_(pa.int32())), pa.field("chosen_ids", pa.list_(pa.int32())), pa.field("rejected_ids", pa.list_(pa.int32())),
    pa.field("prompt_length", pa.int32()), pa.field("event_time", TS), pa.field("ingested_at", TS),
])
SCHEMAS = {"sft": EXAMPLE_SCHEMA, "preferences": PREFERENCE_SCHEMA}


class TrainingDataset:
    """One created version NAME:N; `describe()` is its lineage, `examples(split)` its rows."""

    def __init__(self, datasets: "TrainingDatasets", row: dict):
        self.datasets = datasets
        self.name, self.version, self.table_name = row["name"], int(row["version"]), row["table_name"]
        self.content_hash = row["content_hash"]
        self.lineage = json.loads(row["lineage"])

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        return f"TrainingDataset({self.ref!r})"

    @property
    def artifacts_dir(self):
        return self.datasets.root / self.name / str(self.version)

    @property
    def kind(self) -> str:
        """'sft' (input_ids, labels) or 'preferences' (prompt_ids, chosen_ids, rejected_ids)."""
        return self.lineage.get("kind", "sft")

    def describe(self) -> dict:
        return dict(self.lineage)

    def examples(self, split: str | None = None, columns: list[str] | None = None) -> list[dict]:
        """Rows in build order; `split` 'train' or 'eval' filters."""
        if split not in (None, "train", "eval"):
            raise ConfigError(f"split must be 'train' or 'eval', not {split!r}")
        query = self.datasets.store.db.open_table(self.table_name).search()
        if split:
            query = query.where(f"split = {sql_quote(split)}")
        if columns:
            query = query.select(sorted(set(columns) | {"position"}))
        # Scan order is not a contract of LanceDB: the stored position is the build order.
        return sorted(query.limit(None).to_list(), key=lambda r: r["position"])

    def encoder(self):
        """The PromptEncoder these examples were encoded with, from the pinned tokenizer and template;
        raises FingerprintMismatch when the pinned files no longer reproduce the recorded fingerprint."""
        from llmfti.transforms.model_dependent import FingerprintMismatch, PromptEncoder, PromptTemplate
        from llmfti.transforms.model_dependent.fingerprint import differences

        e = self.lineage["encoder"]
        self.datasets.store.home.fetch(self.artifacts_dir)  # object-store home: into this host's cache
        template = PromptTemplate.model_validate(e["template"])
        enc = PromptEncoder.from_model_dir(self.artifacts_dir / "tokenizer", template, e["max_prompt_tokens"], e["max_answer_tokens"])
        diffs = differences(e["components"], enc.fingerprint_components)
        if diffs:
            raise FingerprintMismatch(f"training dataset {self.ref}", diffs, hint="its pinned tokenizer or template files were changed")
        return enc


class TrainingDatasets:
    """Read, list and write training datasets of a FeatureStore."""

    def __init__(self, store):
        self.store = store
        self.root = store.home.artifacts / "datasets"
        self._meta = SystemTable(store.home, META, META_SCHEMA, db=store.db)

    def _rows(self, where: str | None = None) -> list[dict]:
        return self._meta.query(where)

    def get(self, ref: str) -> TrainingDataset:
        name, version = parse_dataset_ref(ref)
        rows = sorted(self._rows(f"name = {sql_quote(name)}"), key=lambda r: r["version"])
        found = [r for r in rows if version is None or r["version"] == version][-1:]
        if not found:
            raise NotFoundError(f"training dataset {ref!r} does not exist (versions of {name!r}: {[r['version'] for r in rows] or 'none'})",
                                hint="llmfti td create NAME --from FG --model MODEL")
        return TrainingDataset(self, found[0])

    def list(self) -> list[TrainingDataset]:
        return [TrainingDataset(self, r) for r in sorted(self._rows(), key=lambda r: (r["name"], r["version"]))]

    def write(self, name: str, rows: list[dict], content_hash: str, lineage: dict, encoder) -> TrainingDataset:
        """Store built examples as NAME:<next version> with `lineage` (completed here with the ref,
        version, table, artifacts folder, creation time and content hash) and the pinned encoder files.
        All or nothing: a failure removes the table and the version folder."""
        version, vdir = self.store.home.claim_version_dir(self.root / name, [r["version"] for r in self._rows(f"name = {sql_quote(name)}")])
        table_name = f"td__{name}__v{version}"
        try:
            return self._write(name, version, vdir, table_name, rows, content_hash, lineage, encoder)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            if table_name in table_names(self.store.db):
                self.store.db.drop_table(table_name)
            raise

    def _write(self, name, version, vdir, table_name, rows, content_hash, lineage, encoder) -> TrainingDataset:
        import yaml

        schema = SCHEMAS[lineage.get("kind", "sft")]
        self.store.db.create_table(table_name, data=pa.Table.from_pylist([{"position": i, **r} for i, r in enumerate(rows)], schema=schema))
        encoder.tokenizer.save_pretrained(str(vdir / "tokenizer"))
        (vdir / "prompt_template.yaml").write_text(yaml.safe_dump(encoder.template.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        now = datetime.now(timezone.utc)
        ref = f"{name}:{version}"
        lineage = {**lineage, "ref": ref, "name": name, "version": version, "table": table_name, "created_at": now.isoformat(),
                   "artifacts": self.store.home.artifact_uri(vdir), "content_hash": content_hash}
        (vdir / "dataset.json").write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str), encoding="utf-8")
        self.store.home.publish(vdir)  # object-store home: the folder before the row (the commit point)
        row = {"key": ref, "name": name, "version": version, "table_name": table_name, "content_hash": content_hash,
               "rows": len(rows), "lineage": json.dumps(lineage, sort_keys=True, default=str), "created_at": now}
        self._meta.insert_unique(row, "key")  # the commit point: written last
        return self.get(ref)
