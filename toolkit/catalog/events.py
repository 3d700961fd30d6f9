"""The catalog's event log (``events``): what happened to the media and the archive's layout, one row
per event numbered from 1 upward, with its time and a JSON detail."""
from __future__ import annotations

import datetime as dt
import json

import duckdb


def log_event(con: duckdb.DuckDBPyConnection, kind: str, detail: dict) -> None:
    """Append an event of ``kind`` (e.g. ``medium-added``, ``pack-moved``) inside the caller's transaction."""
    eid = con.execute("SELECT coalesce(max(event_id), 0) + 1 FROM events").fetchone()[0]
    con.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [eid, dt.datetime.now(dt.timezone.utc), kind, json.dumps(detail)],
    )


def event_details(con: duckdb.DuckDBPyConnection, kind: str) -> list[dict]:
    """The details of every event of ``kind``, oldest first."""
    rows = con.execute("SELECT detail FROM events WHERE kind = ? ORDER BY event_id", [kind]).fetchall()
    return [json.loads(detail) for (detail,) in rows]
