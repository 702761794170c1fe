"""`--where` filters are one boolean expression over the group's columns (issue 27, finding 11): text
after a `;` used to be ignored by the engine and recorded in the lineage as if it were the filter."""

import pytest

from llmfti.errors import ConfigError
from llmfti.store.where import check_where

COLUMNS = ["doc_id", "score_length", "question"]


@pytest.mark.parametrize("where", ["score_length > 0", "score_length > 0 AND doc_id IN ('a', 'b')", "doc_id LIKE 'a%'",
                                   "score_length IS NOT NULL", "NOT (score_length < 0.5) OR question = 'x; y'"])
def test_one_boolean_expression_over_known_columns_passes_unchanged(where):
    assert check_where(where, COLUMNS) == where


@pytest.mark.parametrize("where, message", [
    ("score_length > 0; DROP TABLE x", "more than one statement"),
    ("nope > 1", "unknown column"),
    ("doc_id", "not a boolean expression"),
    ("score_length > (SELECT 1)", "subquery"),
    ("score_length >", "not a SQL expression"),
    ("  ", "empty"),
])
def test_anything_else_is_a_usage_error(where, message):
    with pytest.raises(ConfigError, match=message):
        check_where(where, COLUMNS)


def test_a_feature_group_read_refuses_a_second_statement(store, tmp_path, hash_config):
    from conftest import write
    from td_fixtures import ingest_docs

    write(tmp_path / "c" / "a.md", "# A\n\nSome text about a thing that is long enough.\n")
    fg = ingest_docs(store, tmp_path / "c", hash_config)
    assert fg.read(where="doc_id = 'a.md'").num_rows >= 1
    with pytest.raises(ConfigError, match="more than one statement"):
        fg.read(where="doc_id = 'a.md'; DROP TABLE x")
