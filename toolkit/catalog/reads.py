"""The named reads for reports, exports and evidence: messages, their sightings, counts.

Reads whose condition may hold the operator's SQL (``--where``, ``sql``)
take the restricted session of :meth:`~toolkit.catalog.Catalog.querying`
(``session``); the condition is spliced in only here, after the CLI checked
it with :func:`toolkit.catalog.user_sql.check_condition`. The others take the
connection of a ``reading()`` session (``con``).
"""
from __future__ import annotations

from typing import Any, Iterator

import duckdb

from .id_tables import registered

# -- selections (the condition may be the operator's SQL) -------------------------------------------
_STORED_MESSAGES = """
SELECT m.msg_id, m.blob_id, m.size, m.subject, m.sent_date, m.internal_date, m.message_id,
       p.medium_id, p.name, m."offset", m.length, m.csize
FROM messages m JOIN packs p USING (pack_id)
"""

_METADATA = """
WITH sel AS (
    SELECT m.* FROM messages m JOIN packs p USING (pack_id) {where}
), rc AS (
    SELECT r.msg_id, list({{'kind': r.kind, 'address': r.address}} ORDER BY r.kind, r.address) AS recipients
    FROM recipients r WHERE {r_range}r.msg_id IN (SELECT msg_id FROM sel) GROUP BY r.msg_id
), si AS (
    SELECT s.msg_id, list({{'source_uri': s.source_uri, 'folder': s.folder, 'source_ref': s.source_ref,
                           'via': s.via, 'decision': s.decision, 'flags': s.flags,
                           'internal_date': s.internal_date, 'seen_at': s.seen_at}}
                          ORDER BY s.seen_at, s.run_id, s.source_ref) AS sightings
    FROM sightings s WHERE {s_range}s.msg_id IN (SELECT msg_id FROM sel) GROUP BY s.msg_id
)
SELECT sel.msg_id, sel.blob_id, sel.message_id, sel.subject, sel.from_addr, sel.from_name,
       sel.sent_date, sel.internal_date, sel.size, sel.spam, sel.defects, sel.id_conflict,
       sel.archived_at, sel.run_id, sel.pack_id,
       coalesce(rc.recipients, []) AS recipients, coalesce(si.sightings, []) AS sightings
FROM sel LEFT JOIN rc USING (msg_id) LEFT JOIN si USING (msg_id)
ORDER BY sel.msg_id
"""


def _metadata_sql(where: str | None, lo: int | None = None, hi: int | None = None) -> str:
    """:data:`_METADATA` for the condition, whole or for one range of msg_ids (the bounds written in as integers,
    so that the operator's ``?`` parameters keep their places): the scans of all three tables then skip the row
    groups outside it."""
    if lo is None:
        return _METADATA.format(where=f"WHERE {where}" if where else "", r_range="", s_range="")
    rng = f"msg_id BETWEEN {int(lo)} AND {int(hi)}"
    return _METADATA.format(where=f"WHERE m.{rng}" + (f" AND ({where})" if where else ""),
                            r_range=f"r.{rng} AND ", s_range=f"s.{rng} AND ")


def _arrow(result) -> Any:
    """A query's result as one Arrow table (newer DuckDB hands a lazy reader: read it inside the session)."""
    table = result.arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    return table


def stored_messages(session, where: str | None = None, params: list | None = None) -> list[tuple]:
    """(msg_id, blob_id, size, subject, sent_date, internal_date, message_id, medium_id, pack name, offset,
    length, csize) of the selected messages in pack order (medium, pack, offset)."""
    sql = _STORED_MESSAGES + (f" WHERE {where}" if where else "") + ' ORDER BY p.medium_id, p.name, m."offset"'
    return session.execute(sql, params or []).fetchall()


def stored_message_batches(session, where: str | None = None, params: list | None = None,
                           rows: int = 10_000) -> Iterator[list[tuple]]:
    """The rows of :func:`stored_messages`, ``rows`` at a time (fetches of one query, in the same order)."""
    sql = _STORED_MESSAGES + (f" WHERE {where}" if where else "") + ' ORDER BY p.medium_id, p.name, m."offset"'
    result = session.execute(sql, params or [])
    while True:
        batch = result.fetchmany(rows)
        if not batch:
            return
        yield batch


def stored_totals(session, where: str | None = None, params: list | None = None) -> tuple[int, int]:
    """(how many, their bytes) of the messages :func:`stored_messages` selects, counted by DuckDB (an export's
    ``--dry-run``: no row per message in Python, docs/reliability.md K8)."""
    sql = "SELECT count(*), coalesce(sum(m.size), 0) FROM messages m JOIN packs p USING (pack_id)"
    n, size = session.execute(sql + (f" WHERE {where}" if where else ""), params or []).fetchone()
    return int(n), int(size)


def count_messages(session, where: str | None = None, params: list | None = None) -> int:
    """How many messages (alias ``m``) the condition selects."""
    return session.execute(f"SELECT count(*) FROM messages m WHERE {where or 'true'}", params).fetchone()[0]


def metadata_table(session, where: str | None = None, params: list | None = None) -> Any:
    """One Arrow row per selected message: its catalog fields, recipients and sightings (``export metadata``)."""
    return _arrow(session.execute(_metadata_sql(where), params))


METADATA_PAGE = 20_000


def metadata_pages(session, where: str | None = None, params: list | None = None,
                   page: int | None = None) -> Iterator[Any]:
    """The rows of :func:`metadata_table` as Arrow tables, in msg_id order: one per range of ``page`` msg_ids
    (ranges without a selected message give none; an empty selection gives one empty table, which carries the
    columns' types). Each range is read on its own, the scans skipping the row groups outside it, so neither
    Python nor DuckDB holds more than a range's rows with their recipients and sightings
    (docs/reliability.md K8)."""
    page = int(page or METADATA_PAGE)
    lo, hi = session.execute("SELECT min(msg_id), max(msg_id) FROM messages").fetchone()

    def rows(first: int, last: int):
        return _arrow(session.execute(_metadata_sql(where, first, last), params or []))

    def ranged(first: int, last: int) -> Iterator[Any]:
        """The range's rows; halved while DuckDB's memory limit of the session refuses it (a costly ``--where``)."""
        try:
            yield rows(first, last)
        except duckdb.OutOfMemoryException:
            if first == last:
                raise
            mid = (first + last) // 2
            yield from ranged(first, mid)
            yield from ranged(mid + 1, last)

    if lo is None:
        yield rows(0, -1)
        return
    given = False
    for first in range(lo, hi + 1, page):
        last = min(first + page - 1, hi)
        for table in ranged(first, last):
            if table.num_rows or (last == hi and not given):
                given = True
                yield table


def user_query(session, query: str) -> Any:
    """The Arrow result of the operator's one SELECT (``mailarchive sql``)."""
    return _arrow(session.execute(query))


# -- reads by msg_id ----------------------------------------------------------------------------------
def sightings_of(con, msg_ids: list[int]) -> list[tuple]:
    """(msg_id, folder, via, flags, internal_date) of the messages' sightings, oldest first per message.

    The ids go to DuckDB as an Arrow column, as in :func:`message_dates`: as a list parameter each id cost ~70 µs
    in DuckDB's Python binding (it tries to import pandas for every element), 18 ms for an export's page of 250
    (bench/RESULTS.md "Issue 15, twelfth session")."""
    with registered(con, "_sighted_ids", "msg_id", sorted(set(msg_ids)), "int64") as ids:
        return con.execute(
            "SELECT s.msg_id, s.folder, s.via, s.flags, s.internal_date FROM sightings s "
            f"WHERE s.msg_id IN {ids} ORDER BY s.msg_id, s.seen_at, s.run_id",
        ).fetchall()


def message_dates(con, msg_ids: list[int]) -> Iterator[list[tuple]]:
    """(msg_id, from_addr, sent_date, internal_date, archived_at) of the messages, by fetches of 10,000 rows.

    The msg_ids go to DuckDB as an Arrow column joined with ``messages``: a list parameter of a million
    ids took DuckDB minutes to take apart (17 s for 100,000 under load, 2.3 s this way)."""
    import pyarrow as pa

    ids = pa.table({"msg_id": pa.array(sorted(set(msg_ids)), pa.int64())})
    con.register("_selected_ids", ids)
    try:
        result = con.execute(
            "SELECT m.msg_id, m.from_addr, m.sent_date, m.internal_date, m.archived_at FROM messages m "
            "JOIN _selected_ids USING (msg_id)")
        while True:
            batch = result.fetchmany(10_000)
            if not batch:
                return
            yield batch
    finally:
        con.unregister("_selected_ids")


def message_batches(con, msg_ids: list[int]) -> list[tuple]:
    """(msg_id, batch_id, archived_at, from_addr) of the messages."""
    if not msg_ids:
        return []
    with registered(con, "_evidence_ids", "msg_id", msg_ids, "int64") as ids:
        return con.execute(
            f"SELECT msg_id, batch_id, archived_at, from_addr FROM messages WHERE msg_id IN {ids}").fetchall()


# -- counts -----------------------------------------------------------------------------------------
def archive_counts(con) -> dict:
    """The catalog's totals for ``stats``: messages, packs, ... and per medium (``packs_by_medium``:
    medium_id → (packs, bytes); ``messages_by_medium``: medium_id → messages)."""
    one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    media_rows = con.execute(
        """SELECT p.medium_id, count(DISTINCT p.pack_id), coalesce(sum(p.bytes), 0)::BIGINT
           FROM packs p GROUP BY 1"""
    ).fetchall()
    return {
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
        "decisions": dict(con.execute("SELECT decision, count(*) FROM sightings GROUP BY 1").fetchall()),
        "packs_by_medium": {mid: (packs, nbytes) for mid, packs, nbytes in media_rows},
        "messages_by_medium": dict(
            con.execute("SELECT p.medium_id, count(*) FROM messages m JOIN packs p USING (pack_id) GROUP BY 1").fetchall()
        ),
    }


def run_folder_counts(con, run_ids: list[int]) -> tuple[list[tuple], list[tuple]]:
    """For the runs: (folder, decision, sightings, bytes) per folder and decision, and (source_ref, errors)."""
    rows = con.execute(
        "SELECT coalesce(folder, ''), decision, count(*), coalesce(sum(m.size), 0) FROM sightings s "
        "JOIN messages m USING (msg_id) WHERE s.run_id IN (SELECT unnest(?)) GROUP BY 1, 2 ORDER BY 1, 2",
        [run_ids],
    ).fetchall()
    errs = con.execute(
        "SELECT source_ref, count(*) FROM run_errors WHERE run_id IN (SELECT unnest(?)) GROUP BY 1",
        [run_ids],
    ).fetchall()
    return rows, errs


def converted_twin_originals(con, msg_ids: list[int]) -> dict[int, int]:
    """For the converted mails among ``msg_ids`` that have a converted-twin: converted msg_id -> original."""
    return dict(con.execute(
        "SELECT converted_msg_id, min(original_msg_id) FROM converted_twins "
        "WHERE converted_msg_id IN (SELECT unnest(?)) GROUP BY 1", [msg_ids]).fetchall())


# -- an export's selection by pages (docs/reliability.md K8) -----------------------------------------
def stored_message_ids(session, where: str | None = None, params: list | None = None) -> Iterator[Any]:
    """The msg_ids of :func:`stored_messages`' rows, in the same order (medium, pack, offset), as Arrow record
    batches: the selection fixed in one session, 8 bytes a mail."""
    sql = ("SELECT m.msg_id FROM messages m JOIN packs p USING (pack_id)" + (f" WHERE {where}" if where else "")
           + ' ORDER BY p.medium_id, p.name, m."offset"')
    reader = session.execute(sql, params or []).to_arrow_reader(65_536)
    yield from reader


def stored_messages_of(con, msg_ids: list[int]) -> list[tuple]:
    """The rows of :func:`stored_messages` for these msg_ids, in their order (a msg_id no longer in the catalog has
    none); the ids go to DuckDB as an Arrow column, as in :func:`message_dates`."""
    import pyarrow as pa

    page = pa.table({"msg_id": pa.array(msg_ids, pa.int64()), "pos": pa.array(range(len(msg_ids)), pa.int64())})
    con.register("_page_ids", page)
    try:
        return con.execute(
            _STORED_MESSAGES.replace("FROM messages m", "FROM _page_ids JOIN messages m USING (msg_id)")
            + " ORDER BY _page_ids.pos").fetchall()
    finally:
        con.unregister("_page_ids")


def converted_twins_within(con, msg_ids) -> dict[int, int]:
    """:func:`converted_twin_originals` of the selection ``msg_ids`` (a sequence of ints, e.g. an ``array('q')``),
    kept only where that original is in the selection too: converted msg_id -> original (docs/dedup.md)."""
    import pyarrow as pa

    con.register("_selected_ids", pa.table({"msg_id": pa.array(msg_ids, pa.int64())}))
    try:
        return dict(con.execute(
            "SELECT t.c, t.o FROM (SELECT converted_msg_id AS c, min(original_msg_id) AS o FROM converted_twins "
            "WHERE converted_msg_id IN (SELECT msg_id FROM _selected_ids) GROUP BY 1) t "
            "WHERE t.o IN (SELECT msg_id FROM _selected_ids)").fetchall())
    finally:
        con.unregister("_selected_ids")


def sighting_folders(con) -> list[str]:
    """The distinct source folders of all sightings."""
    return [r[0] for r in con.execute("SELECT DISTINCT folder FROM sightings WHERE folder IS NOT NULL").fetchall()]
