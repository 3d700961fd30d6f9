"""Archive statistics from the catalog."""
from __future__ import annotations

from .archive import Archive


def archive_stats(archive: Archive) -> dict:
    with archive.catalog.reading() as con:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        media_rows = con.execute(
            """SELECT p.medium_id, count(DISTINCT p.pack_id), coalesce(sum(p.bytes), 0)::BIGINT
               FROM packs p GROUP BY 1"""
        ).fetchall()
        msg_rows = dict(
            con.execute("SELECT p.medium_id, count(*) FROM messages m JOIN packs p USING (pack_id) GROUP BY 1").fetchall()
        )
        decisions = dict(con.execute("SELECT decision, count(*) FROM sightings GROUP BY 1").fetchall())
        s = {
            "uuid": str(archive.uuid),
            "messages": one("SELECT count(*) FROM messages"),
            "message_bytes": one("SELECT coalesce(sum(size), 0)::BIGINT FROM messages"),
            "packs": one("SELECT count(*) FROM packs"),
            "pack_bytes": one("SELECT coalesce(sum(bytes), 0)::BIGINT FROM packs"),
            "recipients": one("SELECT count(*) FROM recipients"),
            "sightings": one("SELECT count(*) FROM sightings"),
            "runs": one("SELECT count(*) FROM runs"),
            "spam": one("SELECT count(*) FROM messages WHERE spam"),
            "with_defects": one("SELECT count(*) FROM messages WHERE defects IS NOT NULL"),
            "id_conflicts": one("SELECT count(*) FROM messages WHERE id_conflict"),
            "decisions": decisions,
        }
    per = {mid: (packs, nbytes) for mid, packs, nbytes in media_rows}
    s["media"] = [
        {
            "id": m.id,
            "state": m.state,
            "location": m.location,
            "packs": per.get(m.id, (0, 0))[0],
            "pack_bytes": per.get(m.id, (0, 0))[1],
            "messages": msg_rows.get(m.id, 0),
        }
        for m in sorted(archive.config.media, key=lambda m: m.id)
    ]
    return s
