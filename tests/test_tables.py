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
