"""Which mails may be purged now (docs/retention.md "Purge and tombstones").

:func:`deletable_now` is asked again at purge time, whatever was decided when the request was approved.
It checks here only that an approved, not yet purged request holds the mail; the retention policies
and legal holds (a hold in force, a retention period not yet over) are to be checked here too.
"""
from __future__ import annotations

import datetime as dt

from toolkit.catalog import purge_rows


def deletable_now(con, msg_ids: list[int], now: dt.datetime) -> set[int]:
    """Those of ``msg_ids`` that may be purged at ``now`` (inside the caller's catalog session)."""
    return purge_rows.approved_items(con, msg_ids)
