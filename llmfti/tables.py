"""System tables: one small helper for every LanceDB table llmfti keeps about itself (feature-group
metadata, ingest runs, quarantine, base models, model versions, eval results, deployments and their
events, the inference log). Each is a fixed Arrow schema in the project home's database, created on
first use, with rows typed by a pydantic model (`Record`) instead of free-form dicts.

    class Event(Record):
        JSON_FIELDS: ClassVar = ("detail",)
        name: str
        detail: dict = {}

    events = SystemTable(home, "_events", EVENT_SCHEMA, Event)
    events.add(Event(name="deploy"))
    events.rows(f"name = {sql_quote('deploy')}")     # -> [Event(...)]

`sql_quote` lives here too, so every layer quotes values the same way.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Generic, Iterable, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

TS = pa.timestamp("us", tz="UTC")


def sql_quote(value: str) -> str:
    """A SQL string literal ('' doubles a quote)."""
    return "'" + str(value).replace("'", "''") + "'"


def table_names(db) -> list[str]:
    """Names of the tables in a LanceDB connection (the listing API changed across lancedb versions)."""
    result = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    return list(getattr(result, "tables", result))


class Record(BaseModel):
    """A typed row of a system table. Fields listed in JSON_FIELDS are stored as JSON strings."""

    model_config = ConfigDict(extra="forbid")
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_row(self) -> dict[str, Any]:
        row = self.model_dump(mode="python")
        for key in self.JSON_FIELDS:
            row[key] = None if row[key] is None else json.dumps(row[key], sort_keys=True, default=str)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]):
        data = {k: v for k, v in row.items() if k in cls.model_fields}
        for key in cls.JSON_FIELDS:
            if isinstance(data.get(key), str):
                data[key] = json.loads(data[key])
        return cls.model_validate(data)


R = TypeVar("R", bound=Record)


class SystemTable(Generic[R]):
    """One system table: connect lazily, create with its schema on first use (exist_ok, so concurrent
    first users share the winner's table), typed rows in and out."""

    def __init__(self, home, name: str, schema: pa.Schema, record: type[R] | None = None, *, db=None, connect=None):
        self.home, self.name, self.schema, self.record = home, name, schema, record
        self._db = db
        self._connect = connect  # how to get a connection when one is needed (default: the home's own)
        self._table = None

    @property
    def db(self):
        if self._db is None:
            self._db = self._connect() if self._connect else self.home.connect()
        return self._db

    def _unconnected(self) -> bool:
        """Nothing here has opened LanceDB yet: reads go through pylance (`ProjectHome.dataset`), which
        reads the same files without importing lancedb; the first write connects."""
        return self._table is None and self._db is None

    def table(self):
        """The table handle, refreshed to its latest commit (kept open: reopening reads a manifest)."""
        if self._table is None:
            try:
                self._table = self.db.create_table(self.name, schema=self.schema, exist_ok=True)
            except ValueError as exc:
                if "schema" not in str(exc).lower():
                    raise
                self._table = self._migrated()
        else:
            self._table.checkout_latest()
        return self._table

    def _migrated(self):
        """A table written by an earlier llmfti lacks columns added since: add them (all null) in one
        commit, so old rows stay readable and new rows carry the new fields. Never drops or retypes."""
        tbl = self.db.open_table(self.name)
        have = set(tbl.schema.names)
        missing = [f for f in self.schema if f.name not in have]
        if missing:
            try:
                tbl.add_columns(missing)
            except Exception:  # a concurrent process added them first: reopen and check
                tbl = self.db.open_table(self.name)
                if any(f.name not in tbl.schema.names for f in missing):
                    raise
        return tbl

    def exists(self) -> bool:
        if self._table is not None:
            return True
        if self._unconnected():
            return self.home.has_table(self.name)
        return self.name in table_names(self.db)

    def _arrow(self, items: Iterable[R | dict]) -> pa.Table:
        rows = [i.to_row() if isinstance(i, Record) else dict(i) for i in items]
        return pa.Table.from_pylist(rows, schema=self.schema)

    def add(self, *items: R | dict) -> None:
        if items:
            self.table().add(self._arrow(items))

    def insert_unique(self, item: R | dict, key: str) -> None:
        """Insert unless a row with the same `key` exists when the merge runs. NOT atomic across
        concurrent writers (LanceDB's merge_insert was measured inserting the same key twice), so
        callers that can race claim the key first (`ProjectHome.claim_version_dir`) or read the first
        row per key."""
        self.insert_new([item], key)

    def insert_new(self, items: Iterable[R | dict], key: str) -> None:
        """Insert the rows whose `key` is not in the table yet, in one commit: idempotent re-delivery by
        one writer (the same race caveat as insert_unique applies to concurrent writers)."""
        data = self._arrow(items)
        if data.num_rows:
            self.table().merge_insert(key).when_not_matched_insert_all().execute(data)

    def update(self, where: str, values: dict[str, Any]) -> None:
        self.table().update(where=where, values=values)

    def query(self, where: str | None = None, *, columns: list[str] | None = None, limit: int | None = None) -> list[dict]:
        """Plain dict rows (JSON columns still encoded); filters, columns and limit pushed into LanceDB."""
        if self._unconnected():
            ds = self.home.dataset(self.name)
            if ds is None:
                return []
            if all(f.name in ds.schema.names for f in self.schema):
                # The same scan and filter (Lance's) that lancedb's query runs (tests/test_tables.py compares them).
                return ds.to_table(columns=columns, filter=where, limit=limit).to_pylist()
            # Written by an earlier llmfti, without newer columns that a filter or selection may name: read
            # it as before, through the connection, which adds them (`_migrated`).
        if not self.exists():
            return []
        q = self.table().search()
        if where:
            q = q.where(where)
        if columns:
            q = q.select(columns)
        return q.limit(limit).to_list()

    def all_rows(self) -> list[dict]:
        """Every row, as `query()` gives them. Before anything here connects, on a local home, from the copy
        that `table_state.table_rows` keeps while the table is unchanged, so a run that reads a small table
        and writes nothing never opens Lance (`import lance` ~0.4 s of a cold start). For small tables only:
        the copy is the whole table."""
        if self._unconnected():
            from llmfti.table_state import pylist, table_rows

            snapshot = table_rows(self.home, self.name)
            if snapshot is None:
                return []
            if all(f.name in snapshot.schema.names for f in self.schema):
                return pylist(snapshot)
            # Written by an earlier llmfti without newer columns: read through the connection, which adds them.
        return self.query()

    def refresh_copy(self) -> None:
        """Bring the local copy `all_rows` reads up to the table's latest commit (after a write, so the
        next process finds it current). Object-store homes keep no copy."""
        if not self.home.remote:
            from llmfti.table_state import table_rows

            table_rows(self.home, self.name)

    def rows(self, where: str | None = None, *, limit: int | None = None) -> list[R]:
        """Typed rows (requires a Record type)."""
        assert self.record is not None, f"{self.name} has no record type"
        return [self.record.from_row(r) for r in self.query(where, limit=limit)]
