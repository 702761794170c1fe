"""FeatureGroup: one schema/logic version of a feature group and its data commits.

A *version* (NAME:N) is fixed to one embedder and one chunker; *commits* are LanceDB table versions,
one per ingest run that changed something. Reads can be pinned with `as_of`: a commit number, a tag,
or an ingestion time (the last commit made at or before it), so late-arriving data never leaks into
something re-created from a pinned read. Storage only: `llmfti.pipelines.feature.ingest(fg, paths)`
writes commits.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from llmfti.errors import ConfigError, NotFoundError
from llmfti.sources.timeparse import TimeOutOfRange, parse_time
from llmfti.tables import table_names


class FeatureGroup:
    def __init__(self, store, name: str, version: int):
        self.store = store
        self.name = name
        self.version = version
        self._info: dict | None = None
        self._latest = None
        self._embedder = None

    def __repr__(self) -> str:
        return f"FeatureGroup({self.key!r})"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def table_name(self) -> str:
        return f"fg__{self.name}__v{self.version}"

    @property
    def info(self) -> dict | None:
        if self._info is None:
            self._info = self.store.meta(self.name, self.version)
        return self._info

    @property
    def config(self):
        from llmfti.config.features import FeatureConfig

        if self.info is None:
            raise NotFoundError(f"feature group {self.key} does not exist")
        return FeatureConfig.model_validate_json(self.info["config"])

    def has_data(self) -> bool:
        if not self.store.connected:  # not connected yet: the same answer from the files (no lancedb import)
            return self.store.home.has_table(self.table_name)
        return self.table_name in table_names(self.store.db)

    def dataset(self):
        """The table at its latest commit as a pylance dataset, opened without a LanceDB connection
        (`ProjectHome.dataset`): for reads on paths that may end without writing (a no-op re-ingest)."""
        ds = self.store.home.dataset(self.table_name)
        if ds is None:
            raise NotFoundError(f"feature group {self.key} has no data yet", hint=f"llmfti ingest PATH --feature-group {self.name}")
        return ds

    def table(self):
        """A fresh handle on the table at its latest commit (callers may check it out elsewhere)."""
        try:
            return self.store.db.open_table(self.table_name)
        except ValueError:  # lancedb: "Table '...' was not found"; one round trip instead of list + open
            raise NotFoundError(f"feature group {self.key} has no data yet", hint=f"llmfti ingest PATH --feature-group {self.name}") from None

    def latest(self):
        """A read handle kept open and refreshed to the latest commit on each call: reopening costs a
        manifest read per query (~0.5 ms), a refresh ~0.1 ms. Not for checkout(): use table() for that."""
        if self._latest is None:
            self._latest = self.table()
        else:
            self._latest.checkout_latest()
        return self._latest

    def embedder(self):
        """The embedder this version was written with (dtype pinned), for queries and re-ingests.
        Built once per handle: repeated searches must not reload the model."""
        if self._embedder is None:
            from llmfti.models.embedders import load_embedder

            self._embedder = load_embedder(self.config.embedder, self.store.home)
        return self._embedder

    # --- time travel ------------------------------------------------------------------------------
    def versions_log(self) -> list[dict[str, Any]]:
        out = []
        for v in self.table().list_versions():
            ts = v["timestamp"]
            # lancedb returns naive local time (datetime.fromtimestamp); make it aware UTC.
            ts = ts.astimezone(timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
            out.append({"commit": int(v["version"]), "timestamp": ts, "rows": int(v.get("metadata", {}).get("total_rows", -1))})
        return out

    def tags(self) -> dict[str, int]:
        return {name: int(t["version"]) for name, t in self.table().tags.list().items()}

    def resolve_commit(self, as_of=None) -> int:
        """Commit number for `as_of`: None (latest), an int/'12' (commit), a tag, or an ISO-8601 time."""
        log = self.versions_log()
        if as_of is None or as_of == "latest":
            return log[-1]["commit"]
        if isinstance(as_of, int) or (isinstance(as_of, str) and as_of.isdigit()):
            commit = int(as_of)
            if commit not in {v["commit"] for v in log}:
                pruned = self.maintenance_log().pruned(self.table_name).get(commit)
                if pruned:
                    raise NotFoundError(f"{self.key} commit {commit} was pruned by maintenance at {pruned['pruned_at']} (nothing pinned it: "
                                        "no tag, deployment, training dataset or eval record)", hint="llmfti fg history " + self.key)
                raise NotFoundError(f"{self.key} has no commit {commit} (commits {log[0]['commit']}..{log[-1]['commit']})")
            return commit
        if isinstance(as_of, str) and as_of in (tags := self.tags()):
            return tags[as_of]
        try:
            when = parse_time(as_of)
        except TimeOutOfRange as exc:  # a valid time, but no commit can be compared with it: a usage error
            raise ConfigError(f"as-of {as_of!r} is out of range: {exc}") from None
        except (ValueError, TypeError):
            raise NotFoundError(f"{as_of!r} is neither a commit, a tag of {self.key}, nor an ISO-8601 time") from None
        eligible = [v["commit"] for v in log if v["timestamp"] <= when]
        # A commit pruned by maintenance may have been the latest at that time: answering with an older
        # stored one would silently read other data.
        pruned = [c for c, p in self.maintenance_log().pruned(self.table_name).items()
                  if parse_time(p["timestamp"]) <= when and c > (eligible[-1] if eligible else 0)]
        if pruned:
            raise NotFoundError(f"{self.key} at {when.isoformat()} was commit {max(pruned)}, which maintenance pruned",
                                hint="pin reads that must stay reproducible with a tag (llmfti fg tag), which retention never prunes")
        if not eligible:
            raise NotFoundError(f"{self.key} had no commit at or before {when.isoformat()} (first: {log[0]['timestamp'].isoformat()})")
        return eligible[-1]

    def as_of(self, as_of=None):
        """The LanceDB table checked out at the resolved commit (read-only view)."""
        tbl = self.table()
        commit = self.resolve_commit(as_of)
        if commit != tbl.version:
            tbl.checkout(commit)
        return tbl

    def read(self, as_of=None, columns: list[str] | None = None, where: str | None = None):
        """All rows at a pinned commit as an Arrow table."""
        tbl = self.as_of(as_of)
        query = tbl.search()
        if where:
            from llmfti.store.where import check_where

            query = query.where(check_where(where, [f.name for f in tbl.schema]))
        if columns:
            query = query.select(columns)
        return query.limit(None).to_arrow()

    def tag(self, commit, tag: str) -> int:
        if not tag or tag.isdigit():
            raise ConfigError(f"invalid tag {tag!r}: a tag must not be empty or all digits (those are commits)")
        commit = self.resolve_commit(commit)
        tbl = self.table()
        if tag in self.tags():
            raise ConfigError(f"tag {tag!r} already exists on {self.key} (commit {self.tags()[tag]}); tags are immutable")
        tbl.tags.create(tag, commit)
        return commit

    def maintenance_log(self):
        from llmfti.store.maintenance import MaintenanceLog

        return MaintenanceLog(self.store.home, db=self.store.db)

    def maintain(self, policy, *, dry_run: bool = False, do_compact: bool = True, now=None):
        """Compact, index new rows and prune what `policy` (a `store.maintenance.RetentionPolicy`, whose
        protected commits the caller computed) lets go; recorded for `history()`. See
        `llmfti.pipelines.maintenance.maintain` for the policy with every pin filled in."""
        from llmfti.store.maintenance import maintain_table

        if not self.has_data():
            raise NotFoundError(f"feature group {self.key} has no data yet")
        # Rows a re-ingest replaced are filtered on every vector query until their fragment is rewritten.
        return maintain_table(self.table(), self.key, policy, dry_run=dry_run, do_compact=do_compact, now=now, log=self.maintenance_log(),
                              materialize_deletions=True)

    def history(self) -> list[dict[str, Any]]:
        """Data commits with time and row count, annotated with the ingest run that made them; versions
        made by index updates ('index') or maintenance ('maintenance'); and commits that maintenance
        pruned (`available: false`, with `pruned_at`): they existed, and time travel to them is gone."""
        runs = {r["summary"].get("data_commit"): r for r in self.store.runs(self.key)} if self.has_data() else {}
        index_commits = {c for r in runs.values() for c in range((r["summary"].get("data_commit") or 0) + 1, (r["commit"] or 0) + 1)}
        tags_by_commit: dict[int, list[str]] = {}
        for name, commit in self.tags().items():
            tags_by_commit.setdefault(commit, []).append(name)
        maint = self.maintenance_log()
        pruned = maint.pruned(self.table_name)
        maint_commits = maint.maintenance_commits(self.table_name)

        def entry(commit: int, when: str, rows: int, available: bool) -> dict[str, Any]:
            run = runs.get(commit)
            change = "data" if run else "index" if commit in index_commits else "maintenance" if commit in maint_commits else "unknown"
            return {
                "commit": commit, "ingested_at": when, "rows": rows, "tags": sorted(tags_by_commit.get(commit, [])), "change": change,
                "run_id": run["run_id"] if run else None, "summary": run["summary"]["documents"] if run else None,
                "lineage": run["summary"].get("lineage") if run else None, "available": available,
                "pruned_at": None if available else pruned[commit]["pruned_at"],
            }

        out = [entry(v["commit"], v["timestamp"].isoformat(), v["rows"], True) for v in self.versions_log()]
        present = {e["commit"] for e in out}
        out += [entry(c, p["timestamp"], p["rows"], False) for c, p in pruned.items() if c not in present]
        return sorted(out, key=lambda e: e["commit"])

    def lineage(self, commit=None) -> dict | None:
        """Where the data at `commit` (default: latest) came from, when a pipeline recorded it (records
        synthesis: the documents group, its commit, method, parameters, seed): the lineage of the last
        run that changed data at or before that commit."""
        if not self.has_data():
            return None
        at = self.resolve_commit(commit)
        runs = [r for r in self.store.runs(self.key) if (r["summary"].get("data_commit") or 0) <= at and r["summary"].get("committed")]
        return runs[-1]["summary"].get("lineage") if runs else None

    def describe(self) -> dict[str, Any]:
        info = dict(self.info or {})
        if not info:
            raise NotFoundError(f"feature group {self.key} does not exist")
        out = {
            "name": self.name,
            "version": self.version,
            "kind": info["kind"],
            "description": info["description"],
            "created_at": _iso(info["created_at"]),
            "embedder": {"id": info["embedder_id"], "fingerprint": info["embedder_fingerprint"], "dtype": info["embedder_dtype"], "dimension": info["dimension"]},
            "chunker": {**json.loads(info["chunker"]), "fingerprint": info["chunker_fingerprint"]},
            "schema": None,
            "rows": 0,
            "latest_commit": None,
            "tags": {},
            "indices": [],
            "lineage": None,
        }
        if self.has_data():
            tbl = self.table()
            out["schema"] = {f.name: str(f.type) for f in tbl.schema}
            out["rows"] = tbl.count_rows()
            out["latest_commit"] = tbl.version
            out["tags"] = self.tags()
            out["indices"] = [{"name": i.name, "type": i.index_type, "columns": list(i.columns)} for i in tbl.list_indices()]
            out["lineage"] = self.lineage()
        return out

    def search(self, query: str, k: int = 5, *, as_of=None, hybrid: bool = False, where: str | None = None, embedder=None):
        from llmfti.store.search import search

        return search(self, query, k=k, as_of=as_of, hybrid=hybrid, where=where, embedder=embedder)


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)
