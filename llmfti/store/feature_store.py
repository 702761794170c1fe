"""FeatureStore: the entry point to feature groups in one project home."""

from __future__ import annotations

import json
import re
from typing import Any

from llmfti.errors import ConfigError, NotFoundError
from llmfti.home import ProjectHome
from llmfti.store import schema

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FG_META, QUARANTINE, RUNS = "_fg_meta", "_quarantine", "_ingest_runs"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'NAME' -> (NAME, None) meaning latest version; 'NAME:3' -> (NAME, 3)."""
    name, _, version = ref.partition(":")
    if not NAME_RE.match(name):
        raise ConfigError(f"invalid feature group name {name!r}: use letters, digits, '_', '-', '.' (max 63)")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(f"invalid version in {ref!r}: expected a positive integer as in NAME:2")
    return name, int(version)


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class FeatureStore:
    """Feature groups of one project home (`LLMFTI_HOME`, default ./.llmfti)."""

    def __init__(self, home: str | ProjectHome | None = None):
        self.home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
        self._db = None

    @property
    def db(self):
        if self._db is None:
            self._db = self.home.connect()
        return self._db

    def system_table(self, name: str):
        schemas = {FG_META: schema.FG_META_SCHEMA, QUARANTINE: schema.QUARANTINE_SCHEMA, RUNS: schema.RUNS_SCHEMA}
        # exist_ok makes concurrent first use safe: the loser of the race opens the winner's table.
        return self.db.create_table(name, schema=schemas[name], exist_ok=True)

    def _meta_rows(self, where: str | None = None) -> list[dict[str, Any]]:
        tbl = self.system_table(FG_META)
        query = tbl.search().where(where) if where else tbl.search()
        return query.limit(None).to_list() if hasattr(query, "to_list") else []

    def list_groups(self) -> list[dict[str, Any]]:
        rows = self._meta_rows()
        return sorted(({k: v for k, v in r.items()} for r in rows), key=lambda r: (r["name"], r["version"]))

    def versions(self, name: str) -> list[int]:
        return sorted(r["version"] for r in self._meta_rows(f"name = {sql_quote(name)}"))

    def meta(self, name: str, version: int) -> dict[str, Any] | None:
        rows = self._meta_rows(f"key = {sql_quote(f'{name}:{version}')}")
        return rows[0] if rows else None

    def register_meta(self, row: dict[str, Any]) -> dict[str, Any]:
        """Insert the metadata row of a new feature-group version unless one exists (first writer wins)."""
        import pyarrow as pa

        tbl = self.system_table(FG_META)
        data = pa.Table.from_pylist([row], schema=schema.FG_META_SCHEMA)
        tbl.merge_insert("key").when_not_matched_insert_all().execute(data)
        return self.meta(row["name"], row["version"])

    def feature_group(self, ref_or_name: str, version: int | None = None, *, must_exist: bool = True):
        """A handle on NAME:VERSION (latest version when none is given)."""
        from llmfti.store.feature_group import FeatureGroup

        name, ref_version = parse_ref(ref_or_name)
        version = version or ref_version
        if version is None:
            known = self.versions(name)
            if not known:
                if must_exist:
                    raise NotFoundError(f"feature group {name!r} does not exist", hint="create it with: llmfti ingest PATH --feature-group " + name)
                version = 1
            else:
                version = known[-1]
        fg = FeatureGroup(self, name, version)
        if must_exist and fg.info is None:
            raise NotFoundError(f"feature group {name}:{version} does not exist (versions: {self.versions(name) or 'none'})")
        return fg

    @property
    def training_datasets(self):
        """Training datasets of this home (`llmfti td ...`)."""
        from llmfti.store.training_datasets import TrainingDatasets

        return TrainingDatasets(self)

    def training_dataset(self, ref: str):
        """Training dataset NAME:VERSION (latest version for NAME), with `describe()` and `examples(split)`."""
        return self.training_datasets.get(ref)

    def quarantine(self, feature_group: str | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        tbl = self.system_table(QUARANTINE)
        clauses = []
        if feature_group:
            clauses.append(f"feature_group = {sql_quote(feature_group)}")
        if run_id:
            clauses.append(f"run_id = {sql_quote(run_id)}")
        query = tbl.search()
        if clauses:
            query = query.where(" AND ".join(clauses))
        return query.limit(None).to_list()

    def runs(self, feature_group: str) -> list[dict[str, Any]]:
        rows = self.system_table(RUNS).search().where(f"feature_group = {sql_quote(feature_group)}").limit(None).to_list()
        for r in rows:
            r["summary"] = json.loads(r["summary"])
        return sorted(rows, key=lambda r: r["started_at"])
