"""The catalog's record of its own backups (``db_backups``): which backup files exist, on which medium,
and whether they verified. Names are medium-relative (``db-backups/<UTC ts>-full.dbk``)."""
from __future__ import annotations

import datetime as dt

import duckdb

#: What the catalog changes with, and when: a backup older than the newest of these is not recent.
_CHANGES = (
    "SELECT max(started_at) FROM runs", "SELECT max(finished_at) FROM runs",
    "SELECT max(created_at) FROM stamp_batches", "SELECT max(gen_time) FROM stamp_batches",
    "SELECT max(created_at) FROM packs", "SELECT max(created_at) FROM media", "SELECT max(at_time) FROM events",
)


def verified_backups(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(name, medium_id, kind, created_at, bytes, blake3 checksum, meta JSON text) of each verified backup, oldest first."""
    return con.execute(
        "SELECT name, medium_id, kind, created_at, bytes, blake3, meta FROM db_backups WHERE verified ORDER BY name"
    ).fetchall()


def verified_backup_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int | None]]:
    """(name, medium_id) of each verified backup, oldest first."""
    return con.execute("SELECT name, medium_id FROM db_backups WHERE verified ORDER BY name").fetchall()


def backup_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """name → SHA-256 of every backup whose file hash is known."""
    return dict(con.execute("SELECT name, blake3 FROM db_backups WHERE blake3 IS NOT NULL").fetchall())


def record_backup(con: duckdb.DuckDBPyConnection, name: str, medium_id: int, kind: str, created: dt.datetime,
                  nbytes: int, blake3: str, meta: str) -> None:
    """A backup written, read back and verified on medium ``medium_id`` (``meta``: its JSON header)."""
    con.execute(
        "INSERT INTO db_backups (name, medium_id, kind, created_at, bytes, blake3, verified, meta) VALUES (?, ?, ?, ?, ?, ?, true, ?)",
        [name, medium_id, kind, created, nbytes, blake3, meta],
    )


def record_restored_backup(con: duckdb.DuckDBPyConnection, name: str, kind: str, created: str) -> None:
    """A backup a restore loaded: verified, on no medium of the new home yet (replaces a row of that name)."""
    con.execute("DELETE FROM db_backups WHERE name = ?", [name])
    con.execute(
        "INSERT INTO db_backups (name, medium_id, kind, created_at, verified, meta) VALUES (?, NULL, ?, ?, true, NULL)",
        [name, kind, created],
    )


def forget_backup(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """The backup ``name`` is gone (its file was deleted)."""
    con.execute("DELETE FROM db_backups WHERE name = ?", [name])


def move_backup(con: duckdb.DuckDBPyConnection, name: str, source: int, target: int) -> None:
    """The file of backup ``name`` on medium ``source`` now counts as on medium ``target``."""
    con.execute("UPDATE db_backups SET medium_id = ? WHERE medium_id = ? AND name = ?", [target, source, name])


def backup_freshness(con: duckdb.DuckDBPyConnection) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(when the newest verified backup was made, when the catalog last changed), each None if never:
    the change times are those of import runs, stamp batches, packs, media and events."""
    newest = con.execute("SELECT max(created_at) FROM db_backups WHERE verified").fetchone()[0]
    if newest is None:
        return None, None
    changed = [t for t in (con.execute(q).fetchone()[0] for q in _CHANGES) if t is not None]
    return newest, max(changed) if changed else None
