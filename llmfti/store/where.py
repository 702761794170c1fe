"""`--where` filters checked before they reach the engine: exactly ONE boolean expression over the
feature group's columns. LanceDB passes the text to DataFusion, which reads up to the first `;` and
ignores the rest, so `"score_length > 0; DROP TABLE x"` used to be accepted and recorded in the
lineage as if it were the filter. Parsed with sqlglot (a SQL parser; the dialect closest to
DataFusion's is postgres): statements, subqueries and unknown columns are refused with a usage error.

    check_where("score_grounding >= 0.5 AND doc_id != 'a'", ["doc_id", "score_grounding"])  # returns the text
"""

from __future__ import annotations

from llmfti.errors import ConfigError

_BOOLEAN = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "And", "Or", "Not", "In", "Is", "Like", "ILike", "Between", "Paren", "Boolean")


def check_where(where: str, columns: list[str]) -> str:
    """`where` unchanged when it is one boolean expression naming only `columns`; ConfigError otherwise."""
    import sqlglot
    from sqlglot import exp

    text = where.strip()
    if not text:
        raise ConfigError("--where is empty: give a boolean expression, e.g. \"score_grounding >= 0.5\"")
    try:
        statements = [s for s in sqlglot.parse(f"SELECT 1 FROM t WHERE {text}", read="postgres") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ConfigError(f"--where {where!r} is not a SQL expression: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise ConfigError(f"--where {where!r} holds more than one statement: give one boolean expression (no ';')")
    condition = statements[0].args.get("where")
    expr = condition.this if condition is not None else None
    if expr is None or type(expr).__name__ not in _BOOLEAN:
        raise ConfigError(f"--where {where!r} is not a boolean expression (a comparison, IN, LIKE, IS NULL, AND/OR/NOT)")
    if any(isinstance(node, (exp.Select, exp.Subquery, exp.Command)) for node in expr.walk()):
        raise ConfigError(f"--where {where!r} holds a subquery: filter on the group's own columns only")
    unknown = sorted({c.name for c in expr.find_all(exp.Column)} - set(columns))
    if unknown:
        raise ConfigError(f"--where {where!r} names unknown column(s) {unknown}", hint="columns: " + ", ".join(sorted(columns)))
    return where
