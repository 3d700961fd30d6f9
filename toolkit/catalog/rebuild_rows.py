"""The named reads and writes of ``db rebuild`` and ``db adopt`` beyond a pack's rows (those are in
:mod:`.ingest_rows`): renumbering messages into stamp-batch order, restoring ``stamp_batches``, counting
what a moved-aside catalog held, where the catalog places each pack."""
from __future__ import annotations

import pyarrow as pa

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


def renumber_by_leaf_rank(con, blob_ids: list[str], batch_ids: list[int], leaf_index: list[int]) -> None:
    """Give messages new msg_ids: first those of each stamp batch (by batch, then leaf index), then the
    others in their present order; set their batch_id; recipients follow their message."""
    con.register("leaf_rank", pa.table({"blob_id": pa.array(blob_ids, pa.string()),
                                        "batch_id": pa.array(batch_ids, pa.int32()),
                                        "idx": pa.array(leaf_index, pa.int64())}))
    con.execute(
        """CREATE TEMP TABLE idmap AS
           SELECT m.msg_id AS old_id, r.batch_id AS batch_id,
                  row_number() OVER (ORDER BY r.batch_id NULLS LAST, r.idx, m.msg_id) AS new_id
           FROM messages m LEFT JOIN leaf_rank r USING (blob_id)"""
    )
    con.execute(
        """CREATE TEMP TABLE m2 AS SELECT m.* REPLACE (i.new_id::BIGINT AS msg_id, i.batch_id::INTEGER AS batch_id)
           FROM messages m JOIN idmap i ON m.msg_id = i.old_id"""
    )
    con.execute(
        """CREATE TEMP TABLE r2 AS SELECT r.* REPLACE (i.new_id::BIGINT AS msg_id)
           FROM recipients r JOIN idmap i ON r.msg_id = i.old_id"""
    )
    con.execute("DELETE FROM recipients")
    con.execute("DELETE FROM messages")
    con.execute("INSERT INTO messages BY NAME SELECT * FROM m2")
    con.execute("INSERT INTO recipients BY NAME SELECT * FROM r2")
    for t in ("idmap", "m2", "r2"):
        con.execute(f"DROP TABLE temp.{t}")
    con.unregister("leaf_rank")


def batch_span(con, batch_id: int) -> tuple[int | None, int | None, int]:
    """(first msg_id, last msg_id, number of messages) of a stamp batch."""
    return con.execute(
        "SELECT min(msg_id), max(msg_id), count(*) FROM messages WHERE batch_id = ?", [batch_id]
    ).fetchone()


def insert_stamp_batch(con, row: dict) -> None:
    """One ``stamp_batches`` row, from a dict of the columns it sets."""
    cols = list(row)
    con.execute(
        f"INSERT INTO stamp_batches ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [row[c] for c in cols],
    )
