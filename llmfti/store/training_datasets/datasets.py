"""TrainingDatasets: versioned training-dataset tables of one project home, with their lineage.

Per version: a LanceDB table `td__NAME__vN` (one row per example: ids, labels, split, the question,
answer and context ids it came from, the source record's event_time and ingested_at), a row in
`_training_datasets` (lineage JSON + content hash; written last, so it is the commit point), and
`artifacts/datasets/NAME/N/` holding dataset.json (the lineage: artifacts carry their config), the
pinned tokenizer and prompt template. Versions are allocated by an atomic mkdir (see
`llmfti.home.claim_version_dir`), so concurrent creators never share a number.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pyarrow as pa

from llmfti.errors import ConfigError, NotFoundError
from llmfti.store.feature_store import sql_quote
from llmfti.store.schema import TS
from llmfti.store.training_datasets import build as b
from llmfti.store.training_datasets import encoding
from llmfti.store.feature_group import _table_names
from llmfti.store.training_datasets.spec import TrainingDatasetSpec, parse_dataset_ref, split_contexts_ref

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


def _iso(t) -> str | None:
    return t.astimezone(timezone.utc).isoformat() if t is not None else None


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
        from llmfti.transforms.model_dependent import FingerprintMismatch, PromptEncoder
        from llmfti.transforms.model_dependent.fingerprint import differences

        e = self.lineage["encoder"]
        enc = PromptEncoder.from_model_dir(self.artifacts_dir / "tokenizer", encoding.load_template(e["template"]), e["max_prompt_tokens"], e["max_answer_tokens"])
        diffs = differences(e["components"], enc.fingerprint_components)
        if diffs:
            raise FingerprintMismatch(f"training dataset {self.ref}", diffs, hint="its pinned tokenizer or template files were changed")
        return enc

    def recreate(self) -> dict:
        """Rebuild in memory from the lineage only; `identical` when the rebuilt examples AND the stored
        table both hash to the recorded content hash. Otherwise names the first differing example."""
        from llmfti.transforms.model_dependent.fingerprint import differences

        lin, e = self.lineage, self.lineage["encoder"]
        enc = encoding.build_encoder(self.datasets.store.home, e["model"], e["template"], e["max_prompt_tokens"], e["max_answer_tokens"])
        stored = self.examples(columns=["example_id", "doc_id", "input_ids", "labels", "split"])
        report = {"ref": self.ref, "content_hash": self.content_hash, "stored_content_hash": b.content_hash(stored), "rows": len(stored),
                  "encoder_fingerprint_ok": enc.fingerprint == e["fingerprint"]}
        if not report["encoder_fingerprint_ok"]:
            diff = {"encoder": differences(e["components"], enc.fingerprint_components)}
            return {**report, "identical": False, "recreated_content_hash": None, "recreated_rows": None, "first_difference": diff}
        built = b.build_examples(self.datasets.store, plan_from_lineage(lin), enc)
        identical = built.content_hash == self.content_hash == report["stored_content_hash"]
        diff = None if identical else b.first_difference(stored, built.rows)
        return {**report, "identical": identical, "recreated_content_hash": built.content_hash, "recreated_rows": len(built.rows), "first_difference": diff}


def plan_from_lineage(lin: dict) -> b.Plan:
    from llmfti.sources.timeparse import parse_time

    ctx = lin.get("contexts") or {}
    return b.Plan(
        records_fg=lin["records"]["feature_group"], records_commit=lin["records"]["commit"],
        event_time_until=parse_time(lin["event_time_until"]) if lin.get("event_time_until") else None,
        contexts_fg=ctx.get("feature_group"), contexts_commit=ctx.get("commit"), top_k=lin["top_k"], split=lin["split"], seed=lin["seed"],
    )


class TrainingDatasets:
    """Create, read and list training datasets of a FeatureStore."""

    def __init__(self, store):
        self.store = store
        self.root = store.home.artifacts / "datasets"

    def _meta(self):
        return self.store.db.create_table(META, schema=META_SCHEMA, exist_ok=True)

    def _rows(self, where: str | None = None) -> list[dict]:
        query = self._meta().search()
        return (query.where(where) if where else query).limit(None).to_list()

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

    def _plan(self, spec: TrainingDatasetSpec) -> tuple[b.Plan, dict]:
        """Resolve the spec's moving references (latest, tags, times) to commits."""
        from llmfti.sources.timeparse import parse_time

        records = self.store.feature_group(spec.source)
        until = None
        if spec.event_time_until:
            try:
                until = parse_time(spec.event_time_until)
            except (ValueError, TypeError):
                raise ConfigError(f"--event-time-until {spec.event_time_until!r} is not an ISO-8601 time") from None
        # Pinned even without --as-of: what exists now is what the dataset was made from.
        resolved = {"records": {"feature_group": records.key, "commit": records.resolve_commit(spec.as_of), "as_of": spec.as_of}}
        ctx_fg = ctx_commit = None
        if spec.contexts:
            ref, at = split_contexts_ref(spec.contexts)
            docs = self.store.feature_group(ref)
            ctx_fg, ctx_commit = docs.key, docs.resolve_commit(at)
            resolved["contexts"] = {"feature_group": ctx_fg, "commit": ctx_commit, "as_of": at, "top_k": spec.top_k,
                                    "embedder": {"id": docs.info["embedder_id"], "fingerprint": docs.info["embedder_fingerprint"]}}
        plan = b.Plan(records.key, resolved["records"]["commit"], until, ctx_fg, ctx_commit, spec.top_k, spec.split, spec.seed)
        return plan, resolved

    def create(self, spec: TrainingDatasetSpec | None = None, **kwargs) -> TrainingDataset:
        """Build and store NAME:<next version>; see `TrainingDatasetSpec` for the fields."""
        from llmfti.home import claim_version_dir

        spec = spec or TrainingDatasetSpec(**kwargs)
        plan, resolved = self._plan(spec)
        source = encoding.resolve_model(self.store.home, spec.model)
        enc = encoding.build_encoder(self.store.home, source, spec.prompt_template, spec.max_prompt_tokens, spec.max_answer_tokens)
        built = b.build_examples(self.store, plan, enc)
        version, vdir = claim_version_dir(self.root / spec.name, [r["version"] for r in self._rows(f"name = {sql_quote(spec.name)}")])
        table_name = f"td__{spec.name}__v{version}"
        try:
            return self._write(spec, version, vdir, table_name, plan, resolved, enc, source, built)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            if table_name in _table_names(self.store.db):
                self.store.db.drop_table(table_name)
            raise

    def _write(self, spec, version, vdir, table_name, plan, resolved, enc, source, built) -> TrainingDataset:
        import yaml

        self.store.db.create_table(table_name, data=pa.Table.from_pylist([{"position": i, **r} for i, r in enumerate(built.rows)], schema=EXAMPLE_SCHEMA))
        enc.tokenizer.save_pretrained(str(vdir / "tokenizer"))
        (vdir / "prompt_template.yaml").write_text(yaml.safe_dump(enc.template.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        now = datetime.now(timezone.utc)
        ref = f"{spec.name}:{version}"
        lineage = {
            "ref": ref, "name": spec.name, "version": version, "description": spec.description, "table": table_name,
            "created_at": now.isoformat(), "artifacts": str(vdir),
            "sources": [{"role": "records", **resolved["records"]}] + ([{"role": "contexts", **resolved["contexts"]}] if "contexts" in resolved else []),
            "records": resolved["records"], "contexts": resolved.get("contexts"),
            "as_of": spec.as_of, "event_time_until": _iso(plan.event_time_until), "top_k": spec.top_k if spec.contexts else 0,
            "encoder": encoding.encoder_lineage(enc, source), "seed": spec.seed, "split": spec.split,
            "content_hash": built.content_hash, "rows": built.stats, "skipped": built.skipped,
            "missing_context_ids": built.missing_context_ids, "spec": spec.model_dump(mode="json"),
        }
        (vdir / "dataset.json").write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str), encoding="utf-8")
        row = {"key": ref, "name": spec.name, "version": version, "table_name": table_name, "content_hash": built.content_hash,
               "rows": len(built.rows), "lineage": json.dumps(lineage, sort_keys=True, default=str), "created_at": now}
        self._meta().merge_insert("key").when_not_matched_insert_all().execute(pa.Table.from_pylist([row], schema=META_SCHEMA))
        return self.get(ref)




def read_examples(name: str, version: str, home):
    """The training pipeline's reader of `NAME:VERSION` (see llmfti.training.data.register_example_reader)."""
    from llmfti.store import FeatureStore
    from llmfti.training.data import DatasetInfo

    if not str(version).isdigit():
        raise ConfigError(f"training dataset {name}:{version}: the version must be a number so the run records an exact lineage")
    ds = FeatureStore(home).training_dataset(f"{name}:{version}")
    rows = ds.examples(columns=["example_id", "input_ids", "labels", "split"])
    e = ds.lineage["encoder"]
    summary = {k: e[k] for k in ("fingerprint", "prompt_template", "prompt_template_version", "max_prompt_tokens", "max_answer_tokens")}
    info = DatasetInfo(ref=ds.ref, encoder={**summary, "training_dataset": ds.ref}, extra={"content_hash": ds.content_hash}, encoder_factory=ds.encoder)
    return [{"input_ids": r["input_ids"], "labels": r["labels"], "split": r["split"]} for r in rows], info
