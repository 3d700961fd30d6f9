"""Archive statistics from the catalog."""
from __future__ import annotations

from .archive import Archive
from .catalog import reads


def archive_stats(archive: Archive) -> dict:
    with archive.catalog.reading() as con:
        counts = reads.archive_counts(con)
    per = counts.pop("packs_by_medium")
    msg_rows = counts.pop("messages_by_medium")
    s = {"uuid": str(archive.uuid), **counts}
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
