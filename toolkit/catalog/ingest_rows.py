"""The named reads and writes of an import run and of ``db rebuild`` (docs/dedup.md).

Writes that belong to one commit (a pack's rows, its sightings, the source
cursor, the run's counters) take the connection of the caller's writer
session, so that they land in one transaction; the others open their own
session from the :class:`~toolkit.catalog.Catalog`.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from array import array
from typing import Any

import duckdb
import pyarrow as pa

from .connection import Catalog
from .id_tables import registered
from .schema import TABLES, columns_table, rows_table

_PREFIX = "('0x' || substr({0}, 1, 15))::UBIGINT"  # the first 60 bits of a hex key


# -- runs and cursors -------------------------------------------------------------------------------------
def start_run(catalog: Catalog, command: str, source_uri: str, now: dt.datetime, pid: int, host: str) -> tuple[int, Any]:
    """Open a run row (status running); returns its run_id and the source's committed cursor (decoded, or None)."""
    with catalog.writing() as con:
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0]
        con.execute(
            "INSERT INTO runs (run_id, command, source_uri, started_at, status, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            [run_id, command, source_uri, now, pid, host],
        )
        cursor = stored_cursor(con, source_uri)
    return run_id, cursor


def finish_run(catalog: Catalog, run_id: int, status: str, now: dt.datetime) -> None:
    with catalog.writing() as con:
        con.execute("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", [now, status, run_id])


def stored_cursor(con, source_uri: str) -> Any:
    """The cursor last committed for a source (decoded JSON), or None."""
    row = con.execute("SELECT cursor FROM cursors WHERE source_uri = ?", [source_uri]).fetchone()
    return json.loads(row[0]) if row else None


def resume_point(cursor: Any, incremental: bool) -> Any:
    """Where a run starts from a committed cursor: after a completed run, incremental sources (IMAP,
    POP3) go on after the last mail; the others are read again from the start and dedup decides."""
    if isinstance(cursor, dict) and cursor.get("complete"):
        return cursor.get("last") if incremental else None
    return cursor


def save_cursor(con, source_uri: str, cursor: Any, now: dt.datetime, run_id: int) -> None:
    con.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)", [source_uri, json.dumps(cursor), now, run_id])


def save_run_counts(con, run_id: int, *, seen: int, archived: int, duplicates: int, merged: int, errors: int,
                    bytes: int) -> None:
    con.execute(
        "UPDATE runs SET seen = ?, archived = ?, duplicates = ?, merged = ?, errors = ?, bytes = ? WHERE run_id = ?",
        [seen, archived, duplicates, merged, errors, bytes, run_id],
    )


# -- keys the catalog holds --------------------------------------------------------------------------------
def _unbounded_if_needed(read):
    """A read of an import (its session under the import's DuckDB memory limit, docs/reliability.md K8) that needs
    more memory than the limit is read again under twice, four times, then without the limit
    (``Catalog.lift_memory_limit``), the lifted limit kept for the rest of the run, as for a commit
    (toolkit/ingest_writer.py): a read gives the same answer twice, and a large catalog costs memory, never the
    import."""
    @functools.wraps(read)
    def run(catalog: Catalog, *args, **kwargs):
        while True:
            try:
                return read(catalog, *args, **kwargs)
            except duckdb.OutOfMemoryException:
                if catalog.memory_limit is None:
                    raise
            catalog.lift_memory_limit()  # outside the handler: the failed session's objects are gone
    return run


@_unbounded_if_needed
def known_at_start(catalog: Catalog, mid_hash) -> tuple[array, array, array, bool]:
    """In one session: the sorted 60-bit prefixes of every archived blob id and dedup key, the sorted
    ``mid_hash`` of every distinct Message-ID, and whether any archived message is converted mail
    (``conversions``: without one, no dedup key needs :func:`split_by_conversion`).

    The prefixes come as DuckDB sorts them, in Arrow batches copied into ``array("Q")``; the Message-IDs are
    hashed a batch at a time. No Python object per archived message is held at once: lists of Python ints and
    strings for a catalog of a million mails were ~380 MB of a second import's peak (docs/reliability.md K8)."""
    with catalog.reading() as con:
        blobs = _uint64s(con.execute(f"SELECT {_PREFIX.format('blob_id')} AS p FROM messages ORDER BY p"))
        keys = _uint64s(con.execute(f"SELECT {_PREFIX.format('dedup_key')} AS p FROM messages ORDER BY p"))
        hashes = array("Q")
        if mid_hash is not None:  # None: the Message-IDs are not asked for (a dry run's duplicates)
            reader = con.execute("SELECT DISTINCT message_id FROM messages WHERE message_id IS NOT NULL"
                                 ).to_arrow_reader(_BATCH_ROWS)
            for batch in reader:
                hashes.extend(map(mid_hash, batch.column(0).to_pylist()))
        converted = con.execute("SELECT EXISTS (SELECT 1 FROM conversions)").fetchone()[0]
    return blobs, keys, _sorted_uint64s(hashes), converted


_BATCH_ROWS = 65536


def _uint64s(result) -> array:
    """The single UBIGINT column (no NULLs) of a DuckDB result, as ``array("Q")``, batch by batch."""
    out = array("Q")
    for batch in result.to_arrow_reader(_BATCH_ROWS):
        column = batch.column(0)
        out.frombytes(memoryview(column.buffers()[1])[column.offset * 8:(column.offset + len(column)) * 8])
    return out


def _sorted_uint64s(values: array) -> array:
    """``values`` sorted, through Arrow (``sorted()`` would make a Python int of each)."""
    unsorted = pa.Array.from_buffers(pa.uint64(), len(values), [None, pa.py_buffer(values)])
    ordered = unsorted.sort()
    out = array("Q")
    out.frombytes(memoryview(ordered.buffers()[1])[ordered.offset * 8:(ordered.offset + len(ordered)) * 8])
    return out


@_unbounded_if_needed
def lookup_keys(catalog: Catalog, blob_ids: list[str], dedup_keys: list[str], message_ids: list[str | None]
                ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """The lowest msg_id the catalog holds for each of these blob ids, dedup keys and Message-IDs."""
    keys = pa.table({"blob_id": pa.array(blob_ids, pa.string()), "dedup_key": pa.array(dedup_keys, pa.string()),
                     "message_id": pa.array(message_ids, pa.string())})
    with catalog.reading() as con:
        con.register("chunk_keys", keys)
        try:
            blobs = con.execute(
                "SELECT m.blob_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT blob_id FROM chunk_keys) k USING (blob_id) GROUP BY 1"
            ).fetchall()
            dkeys = con.execute(
                "SELECT m.dedup_key, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT dedup_key FROM chunk_keys) k USING (dedup_key) GROUP BY 1"
            ).fetchall()
            mids = con.execute(
                "SELECT m.message_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT message_id FROM chunk_keys WHERE message_id IS NOT NULL) k USING (message_id) GROUP BY 1"
            ).fetchall()
        finally:
            con.unregister("chunk_keys")
    return dict(blobs), dict(dkeys), dict(mids)


@_unbounded_if_needed
def split_by_conversion(catalog: Catalog, dedup_keys: list[str], msg_ids: list[int]
                        ) -> tuple[dict[str, int], dict[str, int], set[int]]:
    """For these dedup keys the lowest msg_id among MIME received as it was and among converted mail
    (``conversions``); and which of ``msg_ids`` are converted mail."""
    with catalog.reading() as con:
        with registered(con, "_found_keys", "dedup_key", dedup_keys, "string") as keys:
            rows = con.execute(
                f"""SELECT m.dedup_key, c.msg_id IS NOT NULL, min(m.msg_id) FROM messages m
                    LEFT JOIN conversions c USING (msg_id) WHERE m.dedup_key IN {keys} GROUP BY 1, 2""").fetchall()
        with registered(con, "_found_ids", "msg_id", msg_ids, "int64") as ids:
            conv = {r[0] for r in con.execute(f"SELECT msg_id FROM conversions WHERE msg_id IN {ids}").fetchall()}
    return {k: i for k, c, i in rows if not c}, {k: i for k, c, i in rows if c}, conv


@_unbounded_if_needed
def stored_evidence(catalog: Catalog, msg_ids: list[int]) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """The recipients (msg_id, kind, address) and envelope hashes (msg_id, sha256) stored for these messages."""
    with catalog.reading() as con, registered(con, "_evidence_ids", "msg_id", msg_ids, "int64") as ids:
        rec = con.execute(f"SELECT msg_id, kind, address FROM recipients WHERE msg_id IN {ids}").fetchall()
        env = con.execute(f"SELECT msg_id, sha256 FROM envelopes WHERE msg_id IN {ids}").fetchall()
    return rec, env


# -- appending a pack's rows --------------------------------------------------------------------------------
def next_msg_id_now(catalog: Catalog) -> int:
    """The msg_id the next archived message gets (a run numbers its decided messages from it)."""
    with catalog.reading() as con:
        return next_msg_id(con)


def next_msg_id(con) -> int:
    return con.execute("SELECT coalesce(max(msg_id), 0) + 1 FROM messages").fetchone()[0]


def next_envelope_id(con) -> int:
    return con.execute("SELECT coalesce(max(envelope_id), 0) + 1 FROM envelopes").fetchone()[0]


def append_rows(con, table: str, rows: list[dict]) -> None:
    """Append rows (dicts holding every column of ``table``, see :mod:`.schema`) by column name."""
    if not rows:
        return
    con.register("_rows", rows_table(table, rows))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def add_packs(con, rows: list[dict]) -> None:
    """Insert a commit's pack rows (dicts holding every column of ``packs``) with one prepared statement per
    row: a commit has one pack (or a few), where an Arrow append costs more than its rows (bench/RESULTS.md
    "Commit cost")."""
    names = TABLES["packs"].names
    con.executemany(f"INSERT INTO packs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [[row[n] for n in names] for row in rows])


def append_columns(con, table: str, columns: dict[str, list | pa.Array], count: int) -> None:
    """Append ``count`` rows given as columns (every column of ``table``, see :mod:`.schema`) in one
    Arrow append, by column name."""
    if not count:
        return
    con.register("_rows", columns_table(table, columns))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def add_links(con, rows: list[dict]) -> None:
    """Record links between messages (``message_links`` rows); a pair and kind already linked is kept once."""
    if not rows:
        return
    con.register("_links", rows_table("message_links", rows))
    try:
        con.execute(
            """INSERT INTO message_links BY NAME
               SELECT DISTINCT ON (l.msg_id, l.parent_msg_id, l.kind) l.* FROM _links l
               WHERE NOT EXISTS (SELECT 1 FROM message_links m WHERE m.msg_id = l.msg_id
                                 AND m.parent_msg_id = l.parent_msg_id AND m.kind = l.kind)""")
    finally:
        con.unregister("_links")


def flag_id_conflicts(con, msg_ids: list[int]) -> None:
    """Mark archived messages as sharing their Message-ID with another, different one."""
    with registered(con, "_conflict_ids", "msg_id", sorted(msg_ids), "int64") as ids:
        con.execute(f"UPDATE messages SET id_conflict = true WHERE msg_id IN {ids}")


def flag_shared_message_ids(con, msg_ids: list[int] | None = None) -> None:
    """Mark every message whose Message-ID another archived message shares (``db rebuild``); with
    ``msg_ids`` (``db adopt``) only the Message-IDs of those messages are looked at (both sides flagged)."""
    if msg_ids is None:
        con.execute(
            """UPDATE messages SET id_conflict = true WHERE message_id IN (
                   SELECT message_id FROM messages WHERE message_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"""
        )
        return
    with registered(con, "_adopted_ids", "msg_id", sorted(msg_ids), "int64") as ids:
        con.execute(
            f"""UPDATE messages SET id_conflict = true WHERE message_id IN (
                   SELECT message_id FROM messages WHERE message_id IN (
                       SELECT message_id FROM messages WHERE msg_id IN {ids})
                   GROUP BY 1 HAVING count(*) > 1)""")
