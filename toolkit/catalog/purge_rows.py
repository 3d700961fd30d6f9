"""The named reads and writes of purging approved deletions (docs/retention.md "Purge and tombstones").

A purged mail keeps only its tombstone (msg_id, blob id, stamp batch, request, purged_at); its rows
in ``messages``, ``recipients``, ``sightings``, ``message_links`` and ``conversions`` go. Its journal
envelopes that are in a stamp batch keep their SHA-256 and batch (a Merkle leaf needs both) with the
text emptied; unbatched ones go. One pack's switch (:func:`switch_pack`) is one transaction.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Iterator

from ..errors import IntegrityError
from . import events
from .id_tables import registered, registered_table
from .retention import _id_table


# -- requests ---------------------------------------------------------------------------------------
def approved_requests(con) -> list[tuple[int, str, str | None]]:
    """(request_id, reason, decided_by) of the approved requests not purged yet, oldest first."""
    return con.execute(
        "SELECT request_id, reason, decided_by FROM deletion_requests "
        "WHERE status = 'approved' AND purged_at IS NULL ORDER BY request_id").fetchall()


def request_status(con, request_id: int) -> str | None:
    row = con.execute("SELECT status FROM deletion_requests WHERE request_id = ?", [request_id]).fetchone()
    return row[0] if row else None


def insert_approved_request(con, msg_ids: list[int], *, reason: str, requested_by: str, approved_by: str,
                            now: dt.datetime, where_sql: str = "") -> int:
    """A request already approved, with its frozen items (for callers that decided elsewhere, and tests)."""
    rid = con.execute("SELECT coalesce(max(request_id), 0) + 1 FROM deletion_requests").fetchone()[0]
    con.execute(
        "INSERT INTO deletion_requests (request_id, where_sql, reason, requested_by, requested_at, status, "
        "decided_by, decided_at) VALUES (?, ?, ?, ?, ?, 'approved', ?, ?)",
        [rid, where_sql or f"m.msg_id IN ({', '.join(map(str, msg_ids)) or 'NULL'})", reason, requested_by, now,
         approved_by, now])
    with registered_table(con, "purge_items", _id_table(sorted(set(msg_ids)))) as t:
        con.execute(f"INSERT INTO deletion_items SELECT ?, msg_id FROM {t}", [rid])
    return rid


REQUEST_COLUMNS = ("request_id", "where_sql", "reason", "requested_by", "requested_at", "decided_by", "decided_at",
                   "decision_note")


def request_row(con, request_id: int) -> dict:
    """The columns of a deletion request a deletion record carries (times as ISO 8601 text)."""
    row = con.execute(f"SELECT {', '.join(REQUEST_COLUMNS)} FROM deletion_requests WHERE request_id = ?",
                      [request_id]).fetchone()
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in zip(REQUEST_COLUMNS, row)}


def approved_items(con, msg_ids: list[int]) -> set[int]:
    """Those of ``msg_ids`` that an approved, not yet purged request holds."""
    if not msg_ids:
        return set()
    with registered(con, "_asked_ids", "msg_id", sorted(set(msg_ids)), "int64") as ids:
        rows = con.execute(
            "SELECT DISTINCT i.msg_id FROM deletion_items i JOIN deletion_requests r USING (request_id) "
            f"WHERE r.status = 'approved' AND r.purged_at IS NULL AND i.msg_id IN {ids}").fetchall()
    return {r[0] for r in rows}


#: the msg_ids an approved, not yet purged request holds
_APPROVED = ("SELECT i.msg_id FROM deletion_items i JOIN deletion_requests r USING (request_id) "
             "WHERE r.status = 'approved' AND r.purged_at IS NULL")


@contextlib.contextmanager
def approved_among(con, msg_ids) -> Iterator[str]:
    """SQL selecting those of ``msg_ids`` (joined as an Arrow table while the context lasts) that an approved,
    not yet purged request holds (for :func:`toolkit.catalog.retention.coverage`)."""
    with registered_table(con, "purge_given", _id_table(msg_ids)) as given:
        yield f"SELECT msg_id FROM {given} WHERE msg_id IN ({_APPROVED})"


def approved_of_request(request_id: int) -> str:
    """SQL selecting the msg_ids of request ``request_id`` while an approved, not yet purged request holds them."""
    return f"SELECT i.msg_id FROM deletion_items i WHERE i.request_id = {int(request_id)} AND i.msg_id IN ({_APPROVED})"


def live_items(con, request_id: int) -> list[int]:
    """The msg_ids of a request that are still archived (not tombstoned yet)."""
    return con.execute(
        "SELECT DISTINCT i.msg_id FROM deletion_items i JOIN messages m USING (msg_id) "
        "WHERE i.request_id = ? ORDER BY 1", [request_id]).to_arrow_table().column(0).to_pylist()


def item_count(con, request_id: int) -> int:
    return con.execute("SELECT count(DISTINCT msg_id) FROM deletion_items WHERE request_id = ?",
                       [request_id]).fetchone()[0]


def mark_purged(con, request_id: int, now: dt.datetime, detail: dict) -> None:
    """The request becomes ``purged`` (with its time) and a ``deletion-purged`` event is logged."""
    con.execute("UPDATE deletion_requests SET status = 'purged', purged_at = ? WHERE request_id = ?",
                [now, request_id])
    events.log_event(con, "deletion-purged", detail)


# -- packs ------------------------------------------------------------------------------------------
def packs_holding(con, msg_ids) -> list[tuple[str, int, str, int, int, str]]:
    """(pack_id, medium_id, name, bytes, records, blake3) of the packs that hold any of ``msg_ids`` (a list or an
    Arrow column, joined as a table: no list parameter of every msg_id)."""
    if not len(msg_ids):
        return []
    with registered_table(con, "purge_msg_ids", _id_table(msg_ids)) as ids:
        return con.execute(
            "SELECT p.pack_id, p.medium_id, p.name, p.bytes, p.records, p.blake3 FROM packs p "
            f"WHERE p.pack_id IN (SELECT m.pack_id FROM messages m JOIN {ids} USING (msg_id)) ORDER BY p.name"
        ).fetchall()


def pack_records(con, pack_id: str) -> list[tuple[int, str, int, int, int, int, int | None]]:
    """(msg_id, blob_id, offset, length, size, csize, batch_id) of a pack's mails, in file order."""
    return con.execute(
        'SELECT msg_id, blob_id, "offset", length, size, csize, batch_id FROM messages WHERE pack_id = ? '
        'ORDER BY "offset"', [pack_id]).fetchall()


def pack_row(con, pack_id: str) -> tuple | None:
    """(medium_id, name, bytes, blake3) of a pack, or None."""
    return con.execute("SELECT medium_id, name, bytes, blake3 FROM packs WHERE pack_id = ?", [pack_id]).fetchone()


def switch_pack(con, old_pack_id: str, new_pack: dict | None, moved: dict[str, tuple[int, int]],
                purged: list[tuple[int, str, int | None]], request_id: int, now: dt.datetime, detail: dict) -> None:
    """Inside one transaction: the new pack's row (``new_pack``: pack_id, medium_id, name, bytes, records,
    blake3; None when nothing remains), the remaining mails' place (``moved``: blob_id → (offset, length, csize)),
    a tombstone for each purged (msg_id, blob_id, batch_id) with their rows removed, the old pack's row
    removed, and a ``purge-pack-switched`` event with ``detail``."""
    import pyarrow as pa  # loaded where an Arrow table is made (a command that only lists holds does not load it)

    if new_pack is not None:
        con.execute("INSERT INTO packs (pack_id, medium_id, name, bytes, records, blake3, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [new_pack["pack_id"], new_pack["medium_id"], new_pack["name"], new_pack["bytes"],
                     new_pack["records"], new_pack["blake3"], now])
        if moved:  # one UPDATE joined with the new places as a table (not a statement per mail)
            blobs = list(moved)
            places = pa.table({"blob_id": pa.array(blobs, pa.string()),
                               "offset": pa.array([moved[b][0] for b in blobs], pa.int64()),
                               "length": pa.array([moved[b][1] for b in blobs], pa.int64()),
                               "csize": pa.array([moved[b][2] for b in blobs], pa.int64())})
            with registered_table(con, "purge_moved", places) as t:
                con.execute(f'UPDATE messages SET pack_id = ?, "offset" = t."offset", length = t.length, csize = t.csize '
                            f'FROM {t} t WHERE messages.pack_id = ? AND messages.blob_id = t.blob_id',
                            [new_pack["pack_id"], old_pack_id])
    ids = [m for m, _, _ in purged]
    if purged:
        stones = pa.table({"msg_id": pa.array(ids, pa.int64()), "blob_id": pa.array([b for _, b, _ in purged], pa.string()),
                           "batch_id": pa.array([x for _, _, x in purged], pa.int64())})
        with registered_table(con, "purge_tombstones", stones) as t:
            con.execute(f"INSERT INTO tombstones SELECT msg_id, blob_id, batch_id, ?, ? FROM {t}", [request_id, now])
        _remove_rows(con, ids)
    left = con.execute("SELECT count(*) FROM messages WHERE pack_id = ?", [old_pack_id]).fetchone()[0]
    if left:
        raise IntegrityError(f"pack {old_pack_id}: {left} mail(s) would be left without a pack; nothing switched")
    con.execute("DELETE FROM packs WHERE pack_id = ?", [old_pack_id])
    events.log_event(con, "purge-pack-switched", detail)


def _remove_rows(con, ids: list[int]) -> None:
    """Everything of the purged mails except what a stamp needs (their batched envelopes' hash). The msg_ids are
    joined as an Arrow table: a list parameter costs DuckDB's Python client a module lookup per value (a quarter of
    a purge's time at a million mails)."""
    with registered_table(con, "purge_removed", _id_table(ids)) as t:
        sel = f"SELECT msg_id FROM {t}"
        con.execute(f"DELETE FROM envelopes WHERE batch_id IS NULL AND msg_id IN ({sel})")
        con.execute(f"UPDATE envelopes SET text = '' WHERE msg_id IN ({sel})")
        for table, col in (("recipients", "msg_id"), ("sightings", "msg_id"), ("conversions", "msg_id"),
                           ("message_links", "msg_id"), ("message_links", "parent_msg_id"), ("messages", "msg_id")):
            con.execute(f"DELETE FROM {table} WHERE {col} IN ({sel})")


def switched_packs(con, request_id: int) -> list[dict]:
    """The ``purge-pack-switched`` details of a request (old pack name and medium, new pack), oldest first."""
    return [d for d in events.event_details(con, "purge-pack-switched") if d.get("request_id") == request_id]


# -- tombstones -------------------------------------------------------------------------------------
def tombstone_count(con) -> int:
    return con.execute("SELECT count(*) FROM tombstones").fetchone()[0]


def tombstones_of(con, msg_ids: list[int]) -> dict[int, tuple[int, object]]:
    """msg_id → (request_id, purged_at) of those of ``msg_ids`` that were purged."""
    if not msg_ids:
        return {}
    with registered(con, "_asked_ids", "msg_id", sorted(set(msg_ids)), "int64") as ids:
        rows = con.execute(f"SELECT msg_id, request_id, purged_at FROM tombstones WHERE msg_id IN {ids}").fetchall()
    return {m: (r, t) for m, r, t in rows}


def tombstoned_blobs(con, blob_ids: list[str]) -> set[str]:
    """Those of ``blob_ids`` whose mail was purged by approval (``db adopt`` never brings them back)."""
    if not blob_ids:
        return set()
    with registered(con, "_asked_blobs", "blob_id", sorted(set(blob_ids)), "string") as blobs:
        rows = con.execute(f"SELECT DISTINCT blob_id FROM tombstones WHERE blob_id IN {blobs}").fetchall()
    return {r[0] for r in rows}


def tombstones_matching(session, where: str | None, params: list | None = None) -> list[tuple[int, int, object]]:
    """(msg_id, request_id, purged_at) of the tombstones an operator's condition over alias ``m`` selects,
    where it names only msg_id, blob_id or batch_id (any other condition selects none here)."""
    if not where:
        return []
    try:
        return session.execute(
            f"SELECT m.msg_id, m.request_id, m.purged_at FROM tombstones m WHERE {where} ORDER BY 1",
            params or []).fetchall()
    except Exception:  # duckdb.Error: the condition names message columns a tombstone does not keep
        return []


def live_and_tombstoned(con) -> list[int]:
    """msg_ids that are both archived and tombstoned (never after a complete switch)."""
    return [r[0] for r in con.execute(
        "SELECT msg_id FROM tombstones WHERE msg_id IN (SELECT msg_id FROM messages) ORDER BY 1").fetchall()]


def purged_pack_ids(con) -> set[str]:
    """The ids of every pack a purge switched out (removed from the catalog): their high-water marks,
    kept on a mirror, prove no newer catalog (docs/retention.md "Mirrors and restore")."""
    return {d["old_pack_id"] for d in events.event_details(con, "purge-pack-switched") if d.get("old_pack_id")}
