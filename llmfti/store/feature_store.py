"""FeatureStore: the entry point to feature groups in one project home (storage only: the feature
pipeline that writes them is `llmfti.pipelines.feature`)."""

from __future__ import annotations

import json
from typing import Any

from llmfti.errors import NotFoundError
from llmfti.home import ProjectHome
from llmfti.store import schema
from llmfti.store.names import parse_ref
from llmfti.tables import SystemTable, sql_quote

_SCHEMAS = {"_fg_meta": schema.FG_META_SCHEMA, "_quarantine": schema.QUARANTINE_SCHEMA, "_ingest_runs": schema.RUNS_SCHEMA}
FG_META, QUARANTINE, RUNS = "_fg_meta", "_quarantine", "_ingest_runs"


class FeatureStore:
    """Feature groups of one project home (`LLMFTI_HOME`, default ./.llmfti)."""

    def __init__(self, home: str | ProjectHome | None = None):
        self.home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
        self._db = None
        self._tables: dict[str, SystemTable] = {}

    @property
    def db(self):
        if self._db is None:
            self._db = self.home.connect()
        return self._db

    @property
    def connected(self) -> bool:
        """Whether this store has opened its LanceDB connection (reads before that go through pylance)."""
        return self._db is not None

    def system_table(self, name: str) -> SystemTable:
        """The store's own tables: `_fg_meta`, `_quarantine`, `_ingest_runs`."""
        if name not in self._tables:
            # Connected on first write (or first read after one); reads before that need no LanceDB.
            self._tables[name] = SystemTable(self.home, name, _SCHEMAS[name], db=self._db, connect=lambda: self.db)
        return self._tables[name]

    def _meta_rows(self, **equal: Any) -> list[dict[str, Any]]:
        """Metadata rows whose columns equal `equal`, one per key, the first created: a duplicate left by a
        racing first ingest (see register_meta) never shows as a second version. The table is small (a
        row per feature-group version) and read whole (`SystemTable.all_rows`: a run that writes nothing
        reads it from its local copy, without opening Lance)."""
        first: dict[str, dict] = {}
        for row in sorted(self.system_table(FG_META).all_rows(), key=lambda r: (r["created_at"], r["embedder_fingerprint"] or "")):
            if all(row[k] == v for k, v in equal.items()):
                first.setdefault(row["key"], row)
        return list(first.values())

    def list_groups(self) -> list[dict[str, Any]]:
        rows = self._meta_rows()
        return sorted(({k: v for k, v in r.items()} for r in rows), key=lambda r: (r["name"], r["version"]))

    def versions(self, name: str) -> list[int]:
        return sorted(r["version"] for r in self._meta_rows(name=name))

    def meta(self, name: str, version: int) -> dict[str, Any] | None:
        rows = self._meta_rows(key=f"{name}:{version}")
        return rows[0] if rows else None

    def register_meta(self, row: dict[str, Any], *, wait_s: float = 30.0) -> dict[str, Any]:
        """Create the metadata row of a new feature-group version unless one exists; returns the row
        that holds (the first writer's). Two first ingests may race: claiming the version folder
        `artifacts/feature_groups/NAME/VERSION/` is atomic (mkdir), so exactly one inserts the row and
        the others wait for it, then check their settings against it (on an object-store home the claim is
        a conditional put on the bucket, `ProjectHome.claim_dir`)."""
        import json
        import time

        folder = self.home.artifacts / "feature_groups" / row["name"] / str(row["version"])
        if not self.home.claim_dir(folder):  # mkdir; on an object-store home a conditional put
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                found = self.meta(row["name"], row["version"])
                if found is not None:
                    return found
                time.sleep(0.05)
            # The claimer died between its mkdir and its insert: take over (the earliest row wins on read).
        folder.mkdir(parents=True, exist_ok=True)  # a takeover on a host whose cache never saw the claim
        (folder / "feature_group.json").write_text(json.dumps(row, indent=2, sort_keys=True, default=str), encoding="utf-8")
        self.home.publish(folder / "feature_group.json")
        self.system_table(FG_META).insert_unique(row, "key")
        self.system_table(FG_META).refresh_copy()  # so the next run reads it without opening Lance
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
        clauses = []
        if feature_group:
            clauses.append(f"feature_group = {sql_quote(feature_group)}")
        if run_id:
            clauses.append(f"run_id = {sql_quote(run_id)}")
        return self.system_table(QUARANTINE).query(" AND ".join(clauses) or None)

    def runs(self, feature_group: str) -> list[dict[str, Any]]:
        rows = self.system_table(RUNS).query(f"feature_group = {sql_quote(feature_group)}")
        for r in rows:
            r["summary"] = json.loads(r["summary"])
        return sorted(rows, key=lambda r: r["started_at"])
