"""ModelRegistry: base models and model versions of one project home (tables + `artifacts/models/`).

    reg = ModelRegistry()                                    # $LLMFTI_HOME or ./.llmfti
    reg.import_base_model("path/or.gguf", "smol")            # artifacts/models/base/smol/
    mv = reg.register_version("smol-rag", base_model="smol", adapter_dir="out/adapter", encoder=enc,
                              training_dataset="qa:3", metrics={"eval_loss": 1.2})
    model, tokenizer, encoder = reg.load_model("smol-rag:1")  # verifies fingerprints first

A version folder `artifacts/models/versions/NAME/VERSION/` holds config.json (what made it), the
pinned tokenizer (with its chat template), the pinned prompt template and the adapter if any.
Versions are allocated by an atomic mkdir (a conditional put on an object-store home), so concurrent
registrations never share a number (a crash between allocation and the table insert leaves a gap,
never a duplicate). On an object-store home the folders are uploaded before their row is inserted,
and fetched into this host's cache before they are read (`ProjectHome.publish`/`fetch`). A version without an
adapter is a base model served as is. This is not experiment tracking: final metrics and lineage only.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.hashing import sha256_files
from llmfti.home import ProjectHome
from llmfti.registry import base_models as bm
from llmfti.registry.model_version import STATUSES, ModelVersion, check_name, parse_model_ref
from llmfti.registry.evals import EvalRecord, EvalStore
from llmfti.registry.tables import BASE_MODELS, MODEL_VERSIONS, RegistryTables
from llmfti.tables import sql_quote
from llmfti.registry.verify import CheckFailed, CheckReport, check_version, verify_encoder

DEFAULT_PROMPT_TEMPLATE = "rag-default"


class ModelRegistry:
    def __init__(self, home: str | ProjectHome | None = None):
        self.home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
        self.tables = RegistryTables(self.home)
        self._evals: EvalStore | None = None

    @property
    def eval_store(self) -> EvalStore:
        if self._evals is None:
            self._evals = EvalStore(self.home, db=self.tables.db)
        return self._evals

    # -- base models ------------------------------------------------------------------------------

    def import_base_model(self, source: str, name: str, *, license: str | None = None) -> dict:
        """Import a folder, GGUF file or hub id as base model NAME. Returns its record with `status`
        'imported' or 'present' (same source already imported under NAME: nothing is done)."""
        check_name(name)
        self.home.ensure()
        kind, path = bm.resolve_source(source)
        src_hash = bm.source_hash(kind, path)
        existing = self.get_base(name, must_exist=False)
        if existing is not None:
            if existing["source_sha256"] != src_hash:
                raise ConfigError(f"base model {name!r} already exists (from {existing['source']}); choose another --name")
            return {**existing, "status": "present"}
        dest = bm.base_dir(self.home, name)
        marker = dest / bm.MARKER
        adopt = marker.is_file() and json.loads(marker.read_text()).get("sha256") == src_hash and bm.weight_files(dest)
        if not adopt:  # a folder without a registry row is a leftover (or a pre-registry pull): replace it
            bm.materialize(kind, path, dest)
        gguf = path if kind == "gguf" else None
        record = bm.build_record(self.home, name, source if kind != "folder" else str(path), kind, src_hash, dest, license, gguf)
        self.home.publish(dest)  # object-store home: the files first, then the row that points at them
        self.tables.insert(BASE_MODELS, record, key="name")
        return {**self.get_base(name), "status": "imported"}

    def get_base(self, name: str, *, must_exist: bool = True) -> dict | None:
        rows = self.tables.rows(BASE_MODELS, f"name = {sql_quote(name)}")
        if not rows:
            if must_exist:
                raise NotFoundError(f"base model {name!r} is not registered", hint="llmfti models import SOURCE --name " + name)
            return None
        return rows[0]

    def list_base_models(self) -> list[dict]:
        return sorted(self.tables.rows(BASE_MODELS), key=lambda r: r["name"])

    def base_path(self, name: str) -> Path:
        return self._base_folder(self.get_base(name))

    def _base_folder(self, base: dict) -> Path:
        """A base model's folder, present locally (fetched into the cache on an object-store home)."""
        return self.home.fetch(self.home.root / base["path"])

    # -- versions ---------------------------------------------------------------------------------

    def _claim_version(self, name: str) -> tuple[int, Path]:
        known = [r["version"] for r in self.tables.rows(MODEL_VERSIONS, f"name = {sql_quote(name)}")]
        return self.home.claim_version_dir(self.home.models_dir / "versions" / name, known)

    def register_version(
        self, name: str, *, base_model: str, adapter_dir: str | None = None, encoder=None, prompt_template: str | None = None,
        training_dataset: str | None = None, dataset_lineage: dict | None = None, metrics: dict | None = None,
        config: dict | None = None,
    ) -> ModelVersion:
        """Register NAME:<next version>. Without `encoder`, one is built from the base model's tokenizer
        and `prompt_template` (default rag-default) with the default budget. `dataset_lineage` is what
        the training dataset records about its sources (the training pipeline reads it from the store;
        the registry never does), frozen here with the version."""
        from llmfti.transforms.model_dependent import PromptEncoder, load_prompt_template

        check_name(name)
        base = self.get_base(base_model)
        if encoder is None:
            encoder = PromptEncoder.from_model_dir(self._base_folder(base), prompt_template or DEFAULT_PROMPT_TEMPLATE)
        elif prompt_template is not None and load_prompt_template(prompt_template) != encoder.template:
            raise ConfigError(f"prompt_template {prompt_template!r} is not the encoder's template {encoder.template.name!r}")
        if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ConfigError(f"{adapter_dir}: not a peft adapter folder (no adapter_config.json)")
        lineage = {"base_model": {k: base[k] for k in ("name", "source", "weights_sha256")}}
        if training_dataset:
            lineage["training_dataset"] = (
                {"ref": training_dataset, "resolved": True, "dataset": dataset_lineage} if dataset_lineage is not None
                else {"ref": training_dataset, "resolved": False, "note": "no lineage was supplied with the dataset reference"}
            )
        version, vdir = self._claim_version(name)
        try:
            return self._write_version(name, version, vdir, base_model, adapter_dir, encoder, training_dataset, lineage, metrics, config)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            raise

    def _write_version(self, name, version, vdir, base_model, adapter_dir, encoder, training_dataset, lineage, metrics, config) -> ModelVersion:
        import yaml

        from llmfti.transforms.model_dependent import PromptEncoder, load_prompt_template
        from llmfti.transforms.model_dependent.fingerprint import differences

        adapter_sha = None
        if adapter_dir is not None:
            shutil.copytree(adapter_dir, vdir / "adapter")
            adapter_sha = sha256_files(vdir / "adapter")
        encoder.tokenizer.save_pretrained(str(vdir / "tokenizer"))  # the pinned tokenizer, chat template included
        (vdir / "prompt_template.yaml").write_text(yaml.safe_dump(encoder.template.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        reloaded = PromptEncoder.from_model_dir(vdir / "tokenizer", load_prompt_template(vdir / "prompt_template.yaml"), encoder.max_prompt_tokens, encoder.max_answer_tokens)
        diffs = differences(encoder.fingerprint_components, reloaded.fingerprint_components)
        if diffs:  # what serving will load must be what training used, or the registration is refused
            raise IncompatibleError(f"the encoder does not survive save and reload unchanged ({', '.join(diffs)})")
        now = datetime.now(timezone.utc)
        desc = encoder.describe()
        row = {
            "key": f"{name}:{version}", "name": name, "version": version, "base_model": base_model, "adapter_sha256": adapter_sha,
            "encoder_fingerprint": encoder.fingerprint, "fingerprint_components": encoder.fingerprint_components,
            "prompt_template": desc["prompt_template"], "prompt_template_version": desc["prompt_template_version"],
            "max_prompt_tokens": encoder.max_prompt_tokens, "max_answer_tokens": encoder.max_answer_tokens,
            "training_dataset": training_dataset, "lineage": lineage, "metrics": metrics or {}, "config": config or {},
            "files": bm.file_hashes(vdir, exclude=("config.json",)), "status": "registered", "created_at": now, "status_changed_at": now,
        }
        side = {k: v for k, v in row.items() if k not in ("status", "status_changed_at")}  # config.json: immutable provenance
        side.update(eos_token=desc["eos_token"], pad_token=desc["pad_token"], llmfti_format=1)
        (vdir / "config.json").write_text(json.dumps(side, indent=2, sort_keys=True, default=str))
        self.home.publish(vdir)  # object-store home: the folder first, then the row that makes it visible
        self.tables.insert(MODEL_VERSIONS, row, key="key")
        return self.get(f"{name}:{version}")

    def ensure_base_version(self, name: str, prompt_template: str = DEFAULT_PROMPT_TEMPLATE) -> ModelVersion:
        """NAME's adapter-less version serving base model NAME as is (registered once, then reused)."""
        for mv in reversed(self.versions(name)):
            if mv.base_model == name and mv.adapter_sha256 is None and mv.prompt_template == prompt_template:
                return mv
        return self.register_version(name, base_model=name, prompt_template=prompt_template, config={"created_by": "models import"})

    def _to_version(self, row: dict, evals: list | None = None) -> ModelVersion:
        fields = {k: row[k] for k in ModelVersion.__dataclass_fields__ if k in row and k not in ("path", "evals")}
        return ModelVersion(**fields, path=self.home.models_dir / "versions" / row["name"] / str(row["version"]), evals=evals or [])

    def versions(self, name: str) -> list[ModelVersion]:
        rows = self.tables.rows(MODEL_VERSIONS, f"name = {sql_quote(name)}")
        return [self._to_version(r) for r in sorted(rows, key=lambda r: r["version"])]

    def get(self, ref: str) -> ModelVersion:
        name, version = parse_model_ref(ref)
        if isinstance(version, int):
            rows = self.tables.rows(MODEL_VERSIONS, f"key = {sql_quote(f'{name}:{version}')}")
        else:
            where = f"name = {sql_quote(name)}" + (f" AND status = {sql_quote(version)}" if version else "")
            rows = sorted(self.tables.rows(MODEL_VERSIONS, where), key=lambda r: r["version"])[-1:]
        if not rows:
            known = [mv.version for mv in self.versions(name)]
            raise NotFoundError(f"model {ref!r} not found (versions of {name!r}: {known or 'none'})")
        key = f"{rows[0]['name']}:{rows[0]['version']}"
        evals = [e.model_dump(mode="python", exclude_none=True) for e in self.eval_store.for_model(key)]
        return self._to_version(rows[0], evals)

    def list(self) -> list[ModelVersion]:
        rows = self.tables.rows(MODEL_VERSIONS)
        return [self._to_version(r) for r in sorted(rows, key=lambda r: (r["name"], r["version"]))]

    def set_status(self, ref: str, status: str) -> ModelVersion:
        if status not in STATUSES:
            raise ConfigError(f"invalid status {status!r}: one of {', '.join(STATUSES)}")
        mv = self.get(ref)
        self.tables.update(MODEL_VERSIONS, f"key = {sql_quote(mv.ref)}", {"status": status, "status_changed_at": datetime.now(timezone.utc)})
        return self.get(mv.ref)

    def record_eval(self, ref: str, result: EvalRecord | dict) -> ModelVersion:
        """Append an eval result (suite, metrics, pass/fail, the tuple it judged...); append-only."""
        mv = self.get(ref)
        record = result if isinstance(result, EvalRecord) else EvalRecord.model_validate(result)
        self.eval_store.record(mv.ref, record)
        return self.get(mv.ref)

    def evals(self, ref: str, *, tuple_key: str | None = None) -> list[EvalRecord]:
        """Typed eval records of a version (of one tuple when given), oldest first."""
        return self.eval_store.for_model(self.get(ref).ref, tuple_key=tuple_key)

    # -- verification and loading -------------------------------------------------------------------

    def _encoder_factory(self, mv: ModelVersion):
        from llmfti.transforms.model_dependent import PromptEncoder, load_prompt_template

        self.home.fetch(mv.path)  # object-store home: the pinned tokenizer and template into this host's cache

        def make(template, max_prompt_tokens, max_answer_tokens):
            tmpl = template if template is not None else load_prompt_template(mv.prompt_template_path)
            return PromptEncoder.from_model_dir(mv.tokenizer_dir, tmpl, max_prompt_tokens, max_answer_tokens)

        return make

    def check(self, ref: str) -> CheckReport:
        """Verify artifact hashes and the encoder fingerprint without loading weights; raises CheckFailed
        (an IncompatibleError) naming every difference."""
        mv = self.get(ref)
        base = self.get_base(mv.base_model, must_exist=False)
        if base is not None:
            self._base_folder(base)
        report = check_version(mv, base, self.home.root, self._encoder_factory(mv))
        if not report.ok:
            raise CheckFailed(report)
        return report

    def load_encoder(self, ref: str, *, template=None, max_prompt_tokens: int | None = None, max_answer_tokens: int | None = None):
        """The version's PromptEncoder (pinned tokenizer and template; overrides allowed only if they
        reproduce the registered fingerprint). Raises FingerprintMismatch naming what differs."""
        from llmfti.transforms.model_dependent import load_prompt_template

        mv = self.get(ref)
        if isinstance(template, (str, Path)):
            template = load_prompt_template(template)
        return verify_encoder(mv, self._encoder_factory(mv), template=template, max_prompt_tokens=max_prompt_tokens, max_answer_tokens=max_answer_tokens)

    def load_model(self, ref: str, device: str = "cpu", dtype=None, *, verify_weights: bool = True):
        """(model, tokenizer, encoder): base weights plus the peft adapter if any, after verification."""
        from llmfti.registry.loading import load_verified_model

        mv = self.get(ref)
        encoder = self.load_encoder(mv.ref)
        base = self.get_base(mv.base_model)
        model = load_verified_model(mv, base, self._base_folder(base), encoder, device=device, dtype=dtype, verify_weights=verify_weights)
        return model, encoder.tokenizer, encoder

    def model_card(self, ref: str) -> str:
        from llmfti.registry.card import render_model_card

        mv = self.get(ref)
        return render_model_card(mv, self.get_base(mv.base_model, must_exist=False))

    def describe(self, ref: str) -> dict:
        """A version with its full lineage (base model record, dataset lineage, evals) for `models show`."""
        mv = self.get(ref)
        out = mv.to_dict()
        base = self.get_base(mv.base_model, must_exist=False)
        out["base"] = {k: v for k, v in (base or {}).items() if k != "files"}
        return out

