"""The read session of verify's checks: their own SQL over the catalog, read-only.

``verify`` (``verify/checks.py``, ``verify/deep.py``) is the one place outside
this package that writes SQL: comparing metadata is what it does, and a
query per check says it best. It runs that SQL through a :class:`CheckSession`
and never holds a DuckDB connection itself:

* the catalog is attached read-only (a short session, so a quick verify runs
  beside an import and sees only committed rows);
* :meth:`CheckSession.execute` runs one query (``SELECT`` or ``WITH``) and
  refuses any other statement, so a check cannot change the catalog or the
  session's settings;
* :meth:`CheckSession.register` lays an Arrow table (a media listing, the
  configured media) beside the catalog's tables for the length of the session;
* with ``memory_limit`` DuckDB holds at most that much for the session (the blocks it read are dropped again instead
  of staying cached), and spills nothing to disk (unless its connection already did: :func:`_spill_off`): a read
  the limit refuses is made again without it (:meth:`CheckSession.within_limit`, docs/reliability.md K8).

The named reads of the store (``stamps``, ``tsa_cas``, ``reads``) take a
check session wherever they take a reading connection.

Unlike :meth:`~toolkit.catalog.Catalog.querying` (for SQL the operator
typed), the session is not sandboxed further: its SQL is the toolkit's own.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator

from .connection import Catalog

# atomic groups and possessive runs: a comment, once matched, is never matched again another way,
# so a long run of comments without a word after it fails in linear time
_FIRST_WORD = re.compile(r"\s*+(?>--[^\n]*+\n\s*+|/\*.*?\*/\s*+)*+(\w+)", re.S)


class CheckSession:
    """A read-only view of the catalog for verify's checks (see the module docstring)."""

    def __init__(self, con, before: str | None = None):
        self._con = con
        self._before = before  # the connection's memory limit before the session's, while the session has one

    def within_limit(self, read):
        """``read(self)``; when DuckDB refuses it under the session's memory limit, the limit is lifted for the rest
        of the session and ``read(self)`` runs again (in the same attach: the same catalog state)."""
        if self._before is None:
            return read(self)
        import duckdb

        try:
            return read(self)
        except duckdb.OutOfMemoryException:
            self._lift_limit()
            return read(self)

    def _lift_limit(self) -> None:
        if self._before is not None:  # by value (as DuckDB shows it, to 3 digits): RESET would leave the buffer
            self._con.execute(f"SET memory_limit = {_sql_text(self._before)}")  # pool at the limit (connection.py)
            self._before = None

    def execute(self, sql: str, params: list | None = None):
        """Run one query; returns the DuckDB result (``fetchall``, ``fetchone``, ``arrow``) — fetch it inside
        the session. Any statement other than a query is refused with ``ValueError``."""
        m = _FIRST_WORD.match(sql)
        if m is None or m.group(1).upper() not in ("SELECT", "WITH"):
            raise ValueError(f"a check session runs queries only, not {sql.strip()[:40]!r}")
        return self._con.execute(sql, params or [])

    def register(self, name: str, table: Any) -> None:
        """Make an Arrow table readable as ``name`` until :meth:`unregister` or the session's end."""
        self._con.register(name, table)

    def unregister(self, name: str) -> None:
        self._con.unregister(name)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextlib.contextmanager
def check_session(catalog: Catalog, memory_limit: int | None = None) -> Iterator[CheckSession]:
    """A :class:`CheckSession` over a read-only attach of ``catalog`` (missing or damaged: ``CatalogError``).

    ``memory_limit`` (bytes): DuckDB's memory for this session, put back as it was at its end; nothing is spilled
    (its temp directory is off for the session: a reader writes no file into the home, which a writer's spill uses,
    nor into the working directory), so a read that needs more fails, and :meth:`CheckSession.within_limit` makes it
    again without the limit."""
    with catalog.reading() as con:
        if memory_limit is None:
            yield CheckSession(con)
            return
        before, temp = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
        temp = _spill_off(con, temp)
        con.execute(f"SET memory_limit = '{int(memory_limit)}B'")
        session = CheckSession(con, before)
        try:
            yield session
        finally:
            if temp is not None:
                con.execute(f"SET temp_directory = {_sql_text(temp)}")
            session._lift_limit()


def _spill_off(con, temp: str) -> str | None:
    """Turn the connection's temp directory off; returns the one to put back (None: nothing changed). A connection
    that has already spilled keeps its directory (DuckDB refuses to switch it: the catalog's own, of a writer in
    this process, toolkit/catalog/connection.py)."""
    import duckdb

    if temp == "":
        return None
    try:
        con.execute("SET temp_directory = ''")
    except duckdb.NotImplementedException:
        return None
    return temp
