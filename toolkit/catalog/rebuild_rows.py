"""The named reads and writes of ``db rebuild`` and ``db adopt`` beyond a pack's rows (those are in
:mod:`.ingest_rows`): renumbering messages into stamp-batch order, restoring ``stamp_batches``, counting
what a moved-aside catalog held, where the catalog places each pack."""
from __future__ import annotations

import pyarrow as pa

from . import events
from .connection import Catalog


def table_counts(catalog: Catalog, tables: tuple[str, ...]) -> dict[str, int | None]:
    """Row count of each table (None for one that cannot be counted, e.g. missing in an old catalog)."""
    counts: dict[str, int | None] = {t: None for t in tables}
    with catalog.reading() as con:
        for t in tables:
            try:
                counts[t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            except Exception:
                pass
    return counts


def pack_media(con) -> dict[str, int]:
    """{pack_id: medium_id} of every pack the catalog knows."""
    return dict(con.execute("SELECT pack_id, medium_id FROM packs").fetchall())


def leaf_rank_table(batches: list[tuple[int, bytes]]) -> pa.Table:
    """(blob: 32-byte digest, batch_id, idx) of every message leaf of the given (batch_id, concatenated digests in
    leaf order), batch by batch: the input of :func:`renumber_by_leaf_rank`, ~44 bytes a leaf."""
    parts = []
    for batch_id, packed in batches:
        n = len(packed) // 32
        parts.append(pa.table({
            "blob": pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(packed)]),
            "batch_id": pa.repeat(pa.scalar(batch_id, pa.int32()), n),
            "idx": pa.array(range(n), pa.int64()),
        }))
    return pa.concat_tables(parts) if parts else pa.table({"blob": pa.array([], pa.binary(32)),
                                                            "batch_id": pa.array([], pa.int32()),
                                                            "idx": pa.array([], pa.int64())})


def has_blob(con, blob_id: str) -> bool:
    """Whether a message with this blob id (hex) is in the catalog."""
    return con.execute("SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", [blob_id]).fetchone() is not None


def renumber_by_leaf_rank(con, make_rank) -> None:
    """Give messages and tombstones new msg_ids: first those of each stamp batch (by batch, then leaf index),
    then the others in their present order; set the messages' batch_id (a tombstone keeps the one its
    deletion record names); recipients follow their message.

    ``make_rank()`` gives :func:`leaf_rank_table`'s table; it is dropped once DuckDB has its copy, before the
    joins (~44 bytes a leaf less while they run). A blob that is a leaf of several batches ranks at its first
    place (the lowest batch, then the lowest index), as the stamping that batched it first."""
    rank = make_rank()
    con.register("leaf_rank_in", rank)
    con.execute(
        """CREATE TEMP TABLE leaf_rank AS
           SELECT lower(hex(blob)) AS blob_id, batch_id, idx FROM leaf_rank_in
           QUALIFY row_number() OVER (PARTITION BY blob ORDER BY batch_id, idx) = 1"""
    )
    con.unregister("leaf_rank_in")
    del rank
    # Two equality joins, not one join whose condition holds an OR: DuckDB plans that one as a nested loop
    # (200,000 messages: 287 s; a million: hours), these as hash joins (a million: ~3 s).
    con.execute(
        """CREATE TEMP TABLE idmap AS
           SELECT old_id, src, batch_id,
                  row_number() OVER (ORDER BY coalesce(batch_id, own_batch) NULLS LAST, idx, old_id) AS new_id
           FROM (SELECT m.msg_id AS old_id, 'm' AS src, r.batch_id AS batch_id, NULL::INTEGER AS own_batch, r.idx AS idx
                 FROM messages m LEFT JOIN leaf_rank r ON r.blob_id = m.blob_id
                 UNION ALL
                 SELECT t.msg_id, 't', r.batch_id, t.batch_id, r.idx
                 FROM tombstones t LEFT JOIN leaf_rank r ON r.blob_id = t.blob_id AND r.batch_id = t.batch_id)"""
    )
    con.execute(
        """CREATE TEMP TABLE m2 AS SELECT m.* REPLACE (i.new_id::BIGINT AS msg_id, i.batch_id::INTEGER AS batch_id)
           FROM messages m JOIN idmap i ON m.msg_id = i.old_id AND i.src = 'm'"""
    )
    con.execute(
        """CREATE TEMP TABLE r2 AS SELECT r.* REPLACE (i.new_id::BIGINT AS msg_id)
           FROM recipients r JOIN idmap i ON r.msg_id = i.old_id AND i.src = 'm'"""
    )
    con.execute(
        """CREATE TEMP TABLE t2 AS SELECT t.* REPLACE (i.new_id::BIGINT AS msg_id)
           FROM tombstones t JOIN idmap i ON t.msg_id = i.old_id AND i.src = 't'"""
    )
    con.execute(
        """CREATE TEMP TABLE d2 AS SELECT d.* REPLACE (i.new_id::BIGINT AS msg_id)
           FROM deletion_items d JOIN idmap i ON d.msg_id = i.old_id AND i.src = 't'"""
    )
    for t in ("recipients", "messages", "tombstones", "deletion_items"):
        con.execute(f"DELETE FROM {t}")
    con.execute("INSERT INTO messages BY NAME SELECT * FROM m2")
    con.execute("INSERT INTO recipients BY NAME SELECT * FROM r2")
    con.execute("INSERT INTO tombstones BY NAME SELECT * FROM t2")
    con.execute("INSERT INTO deletion_items BY NAME SELECT * FROM d2")
    for t in ("leaf_rank", "idmap", "m2", "r2", "t2", "d2"):
        con.execute(f"DROP TABLE temp.{t}")


def restore_deletions(con, requests: list[dict], tombstones: list[tuple], switched: list[dict]) -> None:
    """The deletion requests and tombstones that deletion records on the media name (``db rebuild``):
    ``requests`` as rows of ``deletion_requests`` (dicts of its columns), ``tombstones`` as (blob_id,
    batch_id, request_id, purged_at). Tombstones get msg_ids after every message's (the renumbering into
    stamp order follows); each is the one item of its request that the rebuild can name. ``switched``: the
    details of the ``purge-pack-switched`` events the records carry, logged again (a purge rerun removes the
    old packs they name; quick verify's Q10 leaves their marks out)."""
    for row in requests:
        cols = list(row)
        con.execute(f"INSERT INTO deletion_requests ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [row[c] for c in cols])
    first = con.execute("SELECT coalesce(max(msg_id), 0) + 1 FROM messages").fetchone()[0]
    for i, (blob, batch, rid, when) in enumerate(tombstones):
        con.execute("INSERT INTO tombstones VALUES (?, ?, ?, ?, ?)", [first + i, blob, batch, rid, when])
        con.execute("INSERT INTO deletion_items VALUES (?, ?)", [rid, first + i])
    events.log_events(con, "purge-pack-switched", switched)


def restore_events(con, rows: list[tuple]) -> None:
    """Events read back from stamp manifests: (event_id, at_time, kind, detail JSON, batch_id) each."""
    con.executemany("INSERT INTO events (event_id, at_time, kind, detail, batch_id) VALUES (?, ?, ?, ?, ?)", rows)


def batch_span(con, batch_id: int) -> tuple[int | None, int | None, int]:
    """(first msg_id, last msg_id, number of message leaves) of a stamp batch: its messages and the
    tombstones of its purged ones."""
    return con.execute(
        "SELECT min(msg_id), max(msg_id), count(*) FROM (SELECT msg_id, batch_id FROM messages "
        "UNION ALL SELECT msg_id, batch_id FROM tombstones) WHERE batch_id = ?", [batch_id]
    ).fetchone()


def insert_stamp_batch(con, row: dict) -> None:
    """One ``stamp_batches`` row, from a dict of the columns it sets."""
    cols = list(row)
    con.execute(
        f"INSERT INTO stamp_batches ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [row[c] for c in cols],
    )
