"""System tables: typed rows in and out, and tables written by an earlier release gain new columns
without losing a row."""

from __future__ import annotations

import pyarrow as pa

from llmfti.home import ProjectHome
from llmfti.tables import SystemTable, sql_quote


def test_a_table_from_an_earlier_release_gains_the_new_columns(tmp_path):
    home = ProjectHome.at(tmp_path / "home")
    old = SystemTable(home, "_t", pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64())]))
    old.add({"id": "a", "n": 1})
    new = SystemTable(home, "_t", pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64()), pa.field("flag", pa.bool_())]))
    new.add({"id": "b", "n": 2, "flag": True})
    rows = sorted(new.query(), key=lambda r: r["id"])
    assert rows == [{"id": "a", "n": 1, "flag": None}, {"id": "b", "n": 2, "flag": True}]


def test_sql_quote_doubles_quotes():
    assert sql_quote("it's") == "'it''s'"


def test_reads_before_a_connection_go_through_pylance_and_agree_with_lancedb(tmp_path):
    """A system table that has not connected yet reads with pylance (no `import lancedb`, ~1 s of a cold
    start); the rows, filters, columns and limits are the ones lancedb's query returns."""
    import sys

    home = ProjectHome.at(tmp_path / "home")
    schema = pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64()), pa.field("flag", pa.bool_())])
    assert SystemTable(home, "_t", schema).query() == []  # no table yet: nothing, and nothing created
    assert not SystemTable(home, "_t", schema).exists()
    writer = SystemTable(home, "_t", schema)
    writer.add(*({"id": f"r{i}", "n": i, "flag": i % 2 == 0} for i in range(10)))
    reader = SystemTable(home, "_t", schema, connect=lambda: (_ for _ in ()).throw(AssertionError("connected for a read")))
    for where, columns, limit in ((None, None, None), ("n >= 3 AND flag", None, None), (f"id = {sql_quote('r4')}", ["n"], None), ("n < 8", None, 2)):
        assert reader.query(where, columns=columns, limit=limit) == writer.query(where, columns=columns, limit=limit)
    assert reader.exists() and reader._db is None and reader._table is None
    assert "lancedb" in sys.modules  # the writer's; the reader above never asked for a connection


def test_an_earlier_releases_table_read_before_a_connection_gets_the_new_columns(tmp_path):
    """Filters and selections may name a column added since the table was written: such a table is read
    through the connection, which adds the columns (null) first, as any connected read always did."""
    home = ProjectHome.at(tmp_path / "home")
    SystemTable(home, "_t", pa.schema([pa.field("id", pa.string())])).add({"id": "a"})
    schema = pa.schema([pa.field("id", pa.string()), pa.field("flag", pa.bool_())])
    assert SystemTable(home, "_t", schema).query() == [{"id": "a", "flag": None}]
    assert SystemTable(home, "_t", schema).query("flag IS NULL", columns=["id", "flag"]) == [{"id": "a", "flag": None}]


def test_whether_a_table_exists_is_answered_alike_with_and_without_a_connection(tmp_path):
    from llmfti.tables import table_names

    home = ProjectHome.at(tmp_path / "home")
    SystemTable(home, "_real", pa.schema([pa.field("id", pa.string())])).add({"id": "a"})
    (home.db_path / "_mid_creation.lance").mkdir()  # a concurrent first writer's folder, before its commit
    listed = set(table_names(home.connect()))
    for name in ("_real", "_mid_creation", "_absent"):
        assert home.has_table(name) == (name in listed), name
    assert home.dataset("_mid_creation") is None and home.dataset("_absent") is None


def test_all_rows_reads_the_local_copy_while_the_table_is_unchanged(tmp_path, monkeypatch):
    home = ProjectHome.at(tmp_path / "home")
    schema = pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64())])
    writer = SystemTable(home, "_t", schema)
    writer.add({"id": "a", "n": 1})
    writer.refresh_copy()
    with monkeypatch.context() as m:
        m.setattr(ProjectHome, "dataset", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the table was opened")))
        assert SystemTable(home, "_t", schema).all_rows() == [{"id": "a", "n": 1}]
    writer.add({"id": "b", "n": 2})  # a commit: the copy no longer matches the table
    assert sorted(r["id"] for r in SystemTable(home, "_t", schema).all_rows()) == ["a", "b"]
    # A table from an earlier release (no `flag` column) is read through the connection, which adds it.
    newer = pa.schema([*schema, pa.field("flag", pa.bool_())])
    assert sorted((r["id"], r["flag"]) for r in SystemTable(home, "_t", newer).all_rows()) == [("a", None), ("b", None)]
