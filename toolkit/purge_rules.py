"""Which mails may be purged now (docs/retention.md "Purge and tombstones").

:func:`deletable_now` is asked again at purge time, whatever was decided when the request was approved:
a mail is purged only while an approved, not yet purged request holds it AND the retention rules
(toolkit/retention.py) call it deletable at that moment — a legal hold placed after the approval, or a
policy made longer since, keeps it.
"""
from __future__ import annotations

import datetime as dt

from toolkit.catalog import purge_rows, retention as retention_rows
from toolkit.retention import DELETABLE, decide_all


def query_held(catalog) -> dict[int, set[int]]:
    """hold_id → msg_ids of every query hold in force, each run in the restricted SQL session."""
    with catalog.reading() as con:
        rows = [h for h in retention_rows.holds(con) if h["kind"] == "query"]
    if not rows:
        return {}
    with catalog.querying() as session:
        return retention_rows.query_hold_members(session, rows)


def deletable_now(con, msg_ids: list[int], now: dt.datetime, held: dict[int, set[int]] | None = None) -> set[int]:
    """Those of ``msg_ids`` that may be purged at ``now`` (inside the caller's catalog session); ``held``:
    :func:`query_held`, evaluated before the session (None: there are no query holds)."""
    approved = purge_rows.approved_items(con, msg_ids)
    if not approved:
        return set()
    decisions = decide_all(retention_rows.facts(con, held or {}, sorted(approved)), now)
    return {d.msg_id for d in decisions if d.state == DELETABLE}
