"""Reading archived mail back: select rows in the catalog, then read packs in file order.

The selection is read in one short catalog session first, so a reader never
sees rows of an uncommitted pack (docs/reliability.md O6), and packs are read in
offset order, one reader per pack.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from .archive import Archive
from .catalog import reads
from .errors import IntegrityError, StorageError, UsageError
from .pack import IndexEntry, PackReader


@dataclass(frozen=True, slots=True)  # no __dict__: a selection holds one per mail (docs/reliability.md K8)
class StoredMessage:
    msg_id: int
    blob_id: str
    size: int
    subject: str | None
    sent_date: dt.datetime | None
    internal_date: dt.datetime | None
    message_id: str | None
    medium_id: int
    pack_name: str
    entry: IndexEntry


def select_messages(archive: Archive, where: str | None = None, params: list | None = None) -> list[StoredMessage]:
    """The selected messages in pack order; ``where`` may hold the operator's ``--where``
    (checked with :func:`toolkit.catalog.user_sql.check_condition`), so it runs in the restricted session."""
    out: list[StoredMessage] = []
    names: dict[str, str] = {}  # one string per pack name, not one per mail
    with archive.catalog.querying() as session:
        try:
            for rows in reads.stored_message_batches(session, where, params):
                # made a fetch at a time: the fetched tuples of every mail are never held beside the selection
                out += [
                    StoredMessage(
                        msg_id=r[0], blob_id=r[1], size=r[2], subject=r[3], sent_date=r[4], internal_date=r[5],
                        message_id=r[6], medium_id=r[7], pack_name=names.setdefault(r[8], r[8]),
                        entry=IndexEntry(blob_id=bytes.fromhex(r[1]), offset=r[9], length=r[10], size=r[2], csize=r[11]),
                    )
                    for r in rows
                ]
        except Exception as exc:  # duckdb.Error for a bad --where
            raise UsageError(f"the selection failed: {exc}") from None
    return out


def selection_totals(archive: Archive, where: str | None = None, params: list | None = None) -> tuple[int, int]:
    """(messages, bytes) of what :func:`select_messages` selects, without reading the rows."""
    with archive.catalog.querying() as session:
        try:
            return reads.stored_totals(session, where, params)
        except Exception as exc:  # duckdb.Error for a bad --where
            raise UsageError(f"the selection failed: {exc}") from None


def prefer_originals(archive: Archive, selection: list[StoredMessage]) -> tuple[list[StoredMessage], list[dict]]:
    """The selection without each converted mail whose original MIME (its converted-twin) is selected
    too, and those left out as {"msg_id", "original_msg_id"} (docs/dedup.md)."""
    ids = {sm.msg_id for sm in selection}
    with archive.catalog.reading() as con:
        originals = reads.converted_twin_originals(con, sorted(ids))
    drop = {c: o for c, o in originals.items() if o in ids}
    return ([sm for sm in selection if sm.msg_id not in drop],
            [{"msg_id": c, "original_msg_id": o} for c, o in sorted(drop.items())])


def read_messages(
    archive: Archive, selection: list[StoredMessage], stream_above: int | None = None
) -> Iterator[tuple[StoredMessage, bytes | Exception | None]]:
    """Yield each message's authenticated bytes, or the error that names why it cannot be read.

    With ``stream_above``, larger messages come as None: read them with :func:`stream_message`.
    """
    reader: PackReader | None = None
    current: tuple[int, str] | None = None
    for sm in selection:
        key = (sm.medium_id, sm.pack_name)
        if key != current:
            current = key
            try:
                reader = PackReader(archive.storage(sm.medium_id), sm.pack_name, archive.key, archive.uuid)
            except (StorageError, IntegrityError) as exc:
                reader = None
                reader_error: Exception = exc
        if reader is None:
            yield sm, reader_error
            continue
        if stream_above is not None and sm.size > stream_above:
            yield sm, None
            continue
        try:
            yield sm, reader.read(sm.entry)
        except (StorageError, IntegrityError) as exc:
            yield sm, exc


#: Messages above this size are streamed by exporters instead of read whole.
STREAM_ABOVE = 32 * 1024 * 1024


def stream_message(archive: Archive, sm: StoredMessage) -> Iterator[bytes]:
    """The message's authenticated bytes in chunks, bounded memory (the SHA-256 is checked at the end)."""
    reader = PackReader(archive.storage(sm.medium_id), sm.pack_name, archive.key, archive.uuid)
    yield from reader.stream(sm.entry)
