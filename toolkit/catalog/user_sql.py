"""Checks on SQL text the operator types: ``mailarchive sql QUERY`` and ``--where CONDITION``.

The text is parsed by DuckDB's own parser before anything is run, and it runs
only in the restricted session of :meth:`toolkit.catalog.Catalog.querying`
(catalog attached read-only, no file or network access, no extensions, settings
locked). The rules:

* a **query** is exactly one statement, and its type is SELECT (``FROM t``,
  ``WITH …``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE`` are SELECTs too); no
  ``?``/``$n`` placeholders;
* a **condition** is exactly one SQL expression. It must parse on its own
  (``SELECT <text>``) and in parentheses (``SELECT (<text>)``), each time as a
  plain one-column select with no alias, FROM, WHERE, GROUP BY, HAVING,
  QUALIFY, ORDER BY, LIMIT, DISTINCT, set operation or CTE. So a text such as
  ``true); COPY …; SELECT 1 WHERE (true`` or ``false) OR (true`` cannot leave
  the parentheses it is put in. It is embedded with a line break on each side,
  so a trailing ``--`` comment cannot swallow the closing parenthesis.
  Subqueries inside the expression are allowed.
"""
from __future__ import annotations

import json

import duckdb

from ..errors import UsageError


def check_query(text: str, placeholders: bool = False) -> duckdb.Statement:
    """The one SELECT statement of ``text``, or a UsageError saying why not.

    ``placeholders``: the caller binds parameters (its own SQL around a checked condition).
    """
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise UsageError(f"the query does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise UsageError(
            f"give exactly one SQL statement (found {len(statements)}); "
            "only a single query (SELECT) is allowed"
        )
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise UsageError(
            f"only a query (SELECT) is allowed, not a {statement.type.name} statement; the catalog is read-only here"
        )
    if statement.named_parameters and not placeholders:
        raise UsageError("the query has parameter placeholders (? or $n); write the values into it")
    return statement


def check_condition(text: str, what: str = "--where") -> str:
    """``text`` as one parenthesised SQL expression, ready to be ANDed into a WHERE clause."""
    if not text or not text.strip():
        raise UsageError(f"{what} needs an SQL condition, e.g. \"m.size > 1000000\"")
    bare = f"SELECT \n{text}\n"
    wrapped = f"(\n{text}\n)"
    try:
        check_query(bare)  # one SELECT, no placeholders
    except UsageError as exc:
        raise UsageError(f"{what} must be exactly one SQL condition (e.g. \"m.size > 1000000\"): {exc}") from None
    for tree in _parse_trees([bare, f"SELECT {wrapped}"]):
        problem = _single_expression_problem(tree)
        if problem:
            raise UsageError(f"{what} must be exactly one SQL condition (e.g. \"m.size > 1000000\"): {problem}")
    return wrapped


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _parse_trees(sqls: list[str]) -> list[dict]:
    """DuckDB's parse tree of each text (``json_serialize_sql``), on one scratch connection."""
    con = duckdb.connect(":memory:", config={
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "threads": 1,
    })
    try:
        return [json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]) for sql in sqls]
    except duckdb.Error as exc:  # e.g. a DuckDB build without its json functions: refuse, do not guess
        return [{"error": True, "error_message": f"DuckDB cannot check it here ({_first_line(exc)})"}]
    finally:
        con.close()


def _single_expression_problem(tree: dict) -> str | None:
    """None if the parse tree is ``SELECT <one expression>`` and nothing else, else what is wrong."""
    if tree.get("error"):
        return (tree.get("error_message") or "it does not parse").splitlines()[0]
    statements = tree.get("statements") or []
    if len(statements) != 1:
        return "it holds more than one statement"
    node = statements[0].get("node") or {}
    if node.get("type") != "SELECT_NODE":
        return "it continues past the condition (a UNION or similar)"
    items = node.get("select_list") or []
    if len(items) != 1:
        return "it holds more than one expression"
    if items[0].get("alias"):
        return "it holds an alias (AS …)"
    if (node.get("from_table") or {}).get("type") != "EMPTY":
        return "it continues with FROM"
    for key, label in (("where_clause", "WHERE"), ("having", "HAVING"), ("qualify", "QUALIFY"), ("sample", "a sample")):
        if node.get(key) is not None:
            return f"it continues with {label}"
    if node.get("group_expressions") or node.get("group_sets"):
        return "it continues with GROUP BY"
    if node.get("modifiers"):
        return "it continues with ORDER BY, LIMIT or DISTINCT"
    if (node.get("cte_map") or {}).get("map"):
        return "it holds a WITH clause"
    if node.get("aggregate_handling") not in (None, "STANDARD_HANDLING"):
        return "it holds GROUP BY ALL or similar"
    return None
