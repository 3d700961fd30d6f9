"""What the catalog keeps on each medium: its packs (``packs.medium_id``), the mails in them, and the
stamp manifests (``stamp_batches.medium_id``); the reads and moves of media tools (list, retarget,
move, consolidate, mirror, restore)."""
from __future__ import annotations

import duckdb


def pack_counts(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[int, int, int]]:
    """medium id → (packs, bytes, messages), for the media holding packs."""
    rows = con.execute(
        """SELECT p.medium_id, count(DISTINCT p.pack_id), sum(p.bytes)::BIGINT,
                  (SELECT count(*) FROM messages m JOIN packs q USING (pack_id) WHERE q.medium_id = p.medium_id)
           FROM packs p GROUP BY p.medium_id"""
    ).fetchall()
    return {r[0]: (r[1], r[2] or 0, r[3]) for r in rows}


def packs_on_medium(con: duckdb.DuckDBPyConnection, medium_id: int) -> list[tuple[str, int, str]]:
    """(name, bytes, blake3) of each pack on medium ``medium_id``, by name."""
    return con.execute(
        "SELECT name, bytes, blake3 FROM packs WHERE medium_id = ? ORDER BY name", [medium_id]
    ).fetchall()


def packs_on_media(con: duckdb.DuckDBPyConnection, medium_ids: list[int]) -> list[tuple]:
    """(pack_id, name, medium_id, bytes, records, blake3) of each pack on the media ``medium_ids``,
    by medium, then name."""
    return con.execute(
        """SELECT pack_id, name, medium_id, bytes, records, blake3 FROM packs
           WHERE medium_id IN (SELECT unnest(?::INTEGER[])) ORDER BY medium_id, name""",
        [medium_ids],
    ).fetchall()


def count_packs_on(con: duckdb.DuckDBPyConnection, medium_ids: list[int]) -> int:
    """How many packs the catalog keeps on the media ``medium_ids``."""
    return con.execute(
        "SELECT count(*) FROM packs WHERE medium_id IN (SELECT unnest(?::INTEGER[]))", [medium_ids]
    ).fetchone()[0]


def all_packs(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, int, str]]:
    """(medium_id, name, bytes, blake3) of every pack, by medium, then name."""
    return con.execute("SELECT medium_id, name, bytes, blake3 FROM packs ORDER BY medium_id, name").fetchall()


def pack_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The id of every pack in the catalog."""
    return {p for (p,) in con.execute("SELECT pack_id FROM packs").fetchall()}


def packs_with_message_counts(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(pack_id, medium_id, name, bytes, blake3, messages) of every pack, by medium, then name."""
    return con.execute(
        """SELECT p.pack_id, p.medium_id, p.name, p.bytes, p.blake3,
                  (SELECT count(*) FROM messages m WHERE m.pack_id = p.pack_id)
           FROM packs p ORDER BY p.medium_id, p.name"""
    ).fetchall()


def message_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many mails the catalog lists."""
    return con.execute("SELECT count(*) FROM messages").fetchone()[0]


def msg_ids_in_pack(con: duckdb.DuckDBPyConnection, pack_id: str) -> list[int]:
    """The msg_ids of the mails stored in pack ``pack_id``, ascending."""
    return [r[0] for r in con.execute(
        "SELECT msg_id FROM messages WHERE pack_id = ? ORDER BY msg_id", [pack_id]).fetchall()]


def records_in_pack(con: duckdb.DuckDBPyConnection, pack_id: str) -> list[tuple]:
    """(msg_id, blob_id, message_id, subject, offset, length, size, csize) of each mail in pack
    ``pack_id``, by offset: enough to check each record and to name its mail."""
    return con.execute(
        """SELECT msg_id, blob_id, message_id, subject, "offset", length, size, csize
           FROM messages WHERE pack_id = ? ORDER BY "offset" """,
        [pack_id],
    ).fetchall()


def move_pack(con: duckdb.DuckDBPyConnection, pack_id: str, source: int, target: int) -> None:
    """Pack ``pack_id`` is now on medium ``target`` (if the catalog still had it on ``source``)."""
    con.execute("UPDATE packs SET medium_id = ? WHERE pack_id = ? AND medium_id = ?", [target, pack_id, source])


def move_packs(con: duckdb.DuckDBPyConnection, moves: list[tuple[str, int]], target: int) -> None:
    """Each (pack_id, source) of ``moves`` is now on medium ``target`` (if the catalog still had it on its
    source): :func:`move_pack` for many packs in one statement."""
    if moves:
        con.execute(
            """UPDATE packs SET medium_id = $1 FROM (SELECT unnest($2::VARCHAR[]) AS pid, unnest($3::INTEGER[]) AS src) m
               WHERE packs.pack_id = m.pid AND packs.medium_id = m.src""",
            [target, [p for p, _ in moves], [s for _, s in moves]],
        )


def move_stamp_manifest(con: duckdb.DuckDBPyConnection, manifest_name: str, source: int, target: int) -> None:
    """The stamp manifest ``manifest_name`` on medium ``source`` now counts as on medium ``target``."""
    con.execute("UPDATE stamp_batches SET medium_id = ? WHERE medium_id = ? AND manifest_name = ?",
                [target, source, manifest_name])
