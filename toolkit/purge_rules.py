"""Which mails may be purged now (docs/retention.md "Purge and tombstones").

:func:`deletable_now` is asked again at purge time, whatever was decided when the request was approved:
a mail is purged only while an approved, not yet purged request holds it AND the retention rules
(toolkit/retention.py) call it deletable at that moment — a legal hold placed after the approval, or a
policy made longer since, keeps it. The check runs as set operations in DuckDB
(:func:`toolkit.catalog.retention.coverage`), never a Python object per mail.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from toolkit.catalog import purge_rows, retention as retention_rows

if TYPE_CHECKING:  # pyarrow is loaded where an Arrow table is made (a command that only lists holds does not)
    import pyarrow as pa


def query_held(catalog) -> dict:
    """hold_id → msg_ids (Arrow columns) of every query hold in force, each run in the restricted SQL session."""
    with catalog.reading() as con:
        rows = [h for h in retention_rows.holds(con) if h["kind"] == "query"]
    if not rows:
        return {}
    with catalog.querying() as session:
        return retention_rows.query_hold_members(session, rows)


def deletable_now(con, msg_ids, now: dt.datetime, held: dict | None = None) -> set[int]:
    """Those of ``msg_ids`` that may be purged at ``now`` (inside the caller's catalog session); ``held``:
    :func:`query_held`, evaluated before the session (None: there are no query holds)."""
    if not len(msg_ids):
        return set()
    with purge_rows.approved_among(con, msg_ids) as ids:
        return set(_deletable(con, ids, now, held).to_pylist())


def deletable_of_request(con, request_id: int, now: dt.datetime, held: dict | None = None) -> pa.Array:
    """The still archived mails of request ``request_id`` that may be purged at ``now``, sorted (an Arrow column)."""
    return _deletable(con, purge_rows.approved_of_request(request_id), now, held)


def _deletable(con, ids_sql: str, now: dt.datetime, held: dict | None) -> pa.Array:
    with retention_rows.coverage(con, held or {}, ids_sql):
        return retention_rows.deletable_ids(con, ids_sql, now)
