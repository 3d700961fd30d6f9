"""Whole-table reads and loads for catalog backups, and the row checksum that proves them (docs/formats.md).

A backup stores, per catalog table, all its rows, only the rows above a
high-water mark of its key, or those plus the mutable columns of the older
rows; a restore loads them back into an empty, migrated catalog. The content
checksum of a row set is ``[count, sum of md5_number_lower of the row's
canonical text]`` as text: duplicates do not cancel out and row order does not
matter. It is computed the same way over the live catalog and over rows read
back from a backup file, so both sides agree exactly when the rows do.

Which rows a part holds is a *row filter*: SQL text made here
(:func:`rows_up_to`, :func:`rows_above`) and recorded in the backup's meta;
callers pass it back unchanged.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa

from toolkit.process_guard import give_back_freed_memory

#: tables that only ever grow, with the key whose high-water mark splits old from new rows
APPEND_KEYS = {
    "messages": "msg_id",
    "recipients": "msg_id",
    "sightings": "run_id",
    "run_errors": "run_id",
    "events": "event_id",
    "envelopes": "envelope_id",
}
#: columns of older rows that may change; the key of these tables is unique
MUTABLE = {"messages": ("batch_id", "id_conflict"), "envelopes": ("batch_id",)}
#: the catalog's own bookkeeping, never backed up (the new catalog has its own)
SKIP_TABLES = {"schema_migrations"}

_PART_VIEW = "backup_part_rows"


def _col_expr(name: str, typ: str) -> str:
    q = f'"{name}"'
    t = typ.upper()
    if t.startswith("TIMESTAMP") or t == "DATE":
        inner = f"CAST(epoch_us({q}) AS VARCHAR)"
    elif t == "BLOB":
        inner = f"hex({q})"
    else:
        inner = f"CAST({q} AS VARCHAR)"
    return f"coalesce({inner}, chr(0))"


def row_hash_sql(columns: list[list[str]]) -> str:
    parts = ", ".join(_col_expr(n, t) for n, t in columns)
    return f"md5_number_lower(concat_ws(chr(31), {parts}))"


def checksum(con: duckdb.DuckDBPyConnection, relation: str, columns: list[list[str]], where: str | None = None) -> list:
    """[count, checksum text] of the rows of ``relation`` (optionally those passing the row filter ``where``)."""
    sql = f"SELECT count(*), coalesce(sum({row_hash_sql(columns)}), 0)::VARCHAR FROM {relation}"
    if where:
        sql += f" WHERE {where}"
    n, s = con.execute(sql).fetchone()
    return [int(n), s]


def row_checksums(parts: list[tuple[pa.Table, list[list[str]]]]) -> list[list]:
    """[count, checksum text] of each (rows, columns) read back from a backup file, computed as for the catalog."""
    con = duckdb.connect(":memory:")
    try:
        out = []
        for rows, columns in parts:
            con.register(_PART_VIEW, rows)
            out.append(checksum(con, _PART_VIEW, columns))
            con.unregister(_PART_VIEW)
        return out
    finally:
        con.close()


class RowChecksum:
    """:func:`checksum` of rows given a batch at a time (the count and the sum add up over batches)."""

    def __init__(self, columns: list[list[str]]):
        self.columns = columns
        self.count = 0
        self.total = 0
        self._con = duckdb.connect(":memory:")

    def add(self, batch: pa.RecordBatch) -> None:
        self._con.register(_PART_VIEW, pa.Table.from_batches([batch]))
        try:
            n, total = checksum(self._con, _PART_VIEW, self.columns)
        finally:
            self._con.unregister(_PART_VIEW)
        give_back_freed_memory()
        self.count += n
        self.total += int(total)

    def result(self) -> list:
        self._con.close()
        return [self.count, str(self.total)]


def catalog_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[list[str]]]:
    """table → [[column, type], ...] of the attached catalog ``cat`` (default schema; base tables, not views),
    bookkeeping left out."""
    rows = con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_catalog = c.table_catalog AND t.table_schema = c.table_schema "
        "AND t.table_name = c.table_name "
        "WHERE c.table_catalog = 'cat' AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"
    ).fetchall()
    out: dict[str, list[list[str]]] = {}
    for t, c, typ in rows:
        if t not in SKIP_TABLES:
            out.setdefault(t, []).append([c, typ])
    return out


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every table of the attached catalog ``cat`` (views are not tables: they hold no rows to back up)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'cat' "
        "AND table_type = 'BASE TABLE'").fetchall()}


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The names of the schema migrations the catalog went through, in order."""
    return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]


def high_water(con: duckdb.DuckDBPyConnection, table: str, key: str):
    """The largest value of ``key`` in ``table`` (None when the table is empty)."""
    return con.execute(f'SELECT max("{key}") FROM {table}').fetchone()[0]


def rows_up_to(key: str, mark: int) -> str:
    """The row filter for rows at or below the high-water mark ``mark`` of ``key`` (rows without a key count as old)."""
    return f'coalesce("{key}", -1) <= {int(mark)}'


def rows_above(key: str, mark: int) -> str:
    """The row filter for rows above the high-water mark ``mark`` of ``key``."""
    return f'"{key}" > {int(mark)}'


def select_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], where: str | None) -> pa.Table:
    """The ``columns`` of the rows of ``table`` passing the row filter ``where`` (all rows for None)."""
    col_list = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {col_list} FROM {table}"
    if where:
        sql += f" WHERE {where}"
    return con.execute(sql).to_arrow_table()


def select_batches(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], where: str | None,
                   rows: int = 65_536) -> pa.RecordBatchReader:
    """:func:`select_rows` as a reader of record batches of at most ``rows`` rows: a backup streams a table
    instead of holding it whole (docs/reliability.md K8)."""
    col_list = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {col_list} FROM {table}"
    if where:
        sql += f" WHERE {where}"
    return con.execute(sql).to_arrow_reader(rows)


def clear_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Delete every row of ``table`` (a full part replaces them)."""
    con.execute(f"DELETE FROM {table}")


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Append ``rows`` to ``table``, matching columns by name."""
    con.register(_PART_VIEW, rows)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {_PART_VIEW}")
    finally:
        con.unregister(_PART_VIEW)


def patch_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, columns: list[str], rows: pa.Table) -> None:
    """Set ``columns`` of the rows of ``table`` whose ``key`` is in ``rows`` to the values there."""
    sets = ", ".join(f'"{c}" = p."{c}"' for c in columns)
    con.register(_PART_VIEW, rows)
    try:
        con.execute(f'UPDATE {table} SET {sets} FROM {_PART_VIEW} p WHERE {table}."{key}" = p."{key}"')
    finally:
        con.unregister(_PART_VIEW)
