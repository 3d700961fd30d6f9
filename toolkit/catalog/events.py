"""The catalog's event log (``events``): what happened to the media and the archive's layout, one row
per event numbered from 1 upward, with its time and a JSON detail.

Events of the kinds in :data:`STAMPED_KINDS` (the steps of an approved deletion) are leaves of the
next stamp batch (docs/timestamps.md): ``batch_id`` names it, and the leaf is the SHA-256 of the
event's canonical JSON (:func:`canonical_json`), so the event's time, kind and detail are proven.
"""
from __future__ import annotations

import datetime as dt
import json

import duckdb

#: the event kinds that a stamp batch takes as leaves (docs/retention.md)
STAMPED_KINDS = ("deletion-requested", "deletion-approved", "deletion-rejected", "deletion-purged")


def log_event(con: duckdb.DuckDBPyConnection, kind: str, detail: dict) -> int:
    """Append an event of ``kind`` (e.g. ``medium-added``, ``pack-moved``) inside the caller's transaction;
    returns its event_id. An event of a kind in :data:`STAMPED_KINDS` waits for the next stamp batch."""
    eid = con.execute("SELECT coalesce(max(event_id), 0) + 1 FROM events").fetchone()[0]
    con.execute(
        "INSERT INTO events (event_id, at_time, kind, detail) VALUES (?, ?, ?, ?)",
        [eid, dt.datetime.now(dt.timezone.utc), kind, json.dumps(detail)],
    )
    return eid


def log_events(con: duckdb.DuckDBPyConnection, kind: str, details: list[dict]) -> None:
    """:func:`log_event` for several events of ``kind`` (not a stamped kind), numbered in order, one statement."""
    if kind in STAMPED_KINDS:
        raise ValueError(f"event kind {kind!r} is stamped: log it with log_stamped_event")
    if not details:
        return
    first = con.execute("SELECT coalesce(max(event_id), 0) + 1 FROM events").fetchone()[0]
    now = dt.datetime.now(dt.timezone.utc)
    con.execute(
        "INSERT INTO events (event_id, at_time, kind, detail) "
        "SELECT unnest(?::BIGINT[]), ?::TIMESTAMPTZ, ?, unnest(?::VARCHAR[])",
        [list(range(first, first + len(details))), now, kind, [json.dumps(d) for d in details]],
    )


def log_stamped_event(con: duckdb.DuckDBPyConnection, kind: str, detail: dict) -> int:
    """:func:`log_event` for a kind that the next stamp batch proves (one of :data:`STAMPED_KINDS`)."""
    if kind not in STAMPED_KINDS:
        raise ValueError(f"event kind {kind!r} is not a stamped kind ({', '.join(STAMPED_KINDS)})")
    return log_event(con, kind, detail)


def event_details(con: duckdb.DuckDBPyConnection, kind: str) -> list[dict]:
    """The details of every event of ``kind``, oldest first."""
    rows = con.execute("SELECT detail FROM events WHERE kind = ? ORDER BY event_id", [kind]).fetchall()
    return [json.loads(detail) for (detail,) in rows]


def canonical_json(event_id: int, at_time: dt.datetime, kind: str, detail: str | None) -> bytes:
    """The bytes a stamped event's leaf hashes: ``{"at", "detail", "event_id", "kind"}`` as compact JSON with
    sorted keys, ``at`` in UTC ISO 8601 with microseconds, ``detail`` the parsed JSON detail (docs/formats.md)."""
    at = at_time if at_time.tzinfo else at_time.replace(tzinfo=dt.timezone.utc)
    doc = {"event_id": int(event_id), "at": at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
           "kind": kind, "detail": json.loads(detail) if detail else None}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stamped_event_rows(con: duckdb.DuckDBPyConnection, batch_id: int | None, limit: int | None = None) -> list[tuple]:
    """(event_id, at_time, kind, detail) of the stamped-kind events of batch ``batch_id`` (None: those in no
    batch yet, the first ``limit`` of them), by event_id."""
    cond = "batch_id IS NULL" if batch_id is None else "batch_id = ?"
    params: list = [list(STAMPED_KINDS)] + ([] if batch_id is None else [batch_id])
    sql = (f"SELECT event_id, at_time, kind, detail FROM events WHERE kind IN (SELECT unnest(?::VARCHAR[])) "
           f"AND {cond} ORDER BY event_id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql, params).fetchall()


def has_event_batches(con: duckdb.DuckDBPyConnection) -> bool:
    """Does the catalog hold ``events.batch_id`` (a catalog not yet migrated by a writer does not)?"""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'cat' AND table_name = 'events' "
        "AND column_name = 'batch_id'").fetchone()[0])


def batch_events_up_to(con: duckdb.DuckDBPyConnection, batch_id: int, last_event: int) -> None:
    """Put every unbatched stamped-kind event with event_id ≤ ``last_event`` into the batch."""
    con.execute("UPDATE events SET batch_id = ? WHERE batch_id IS NULL AND event_id <= ? "
                "AND kind IN (SELECT unnest(?::VARCHAR[]))", [batch_id, last_event, list(STAMPED_KINDS)])
