"""Reading archived mail back: select rows in the catalog, then read packs in file order.

The selection is read in one short catalog session first, so a reader never
sees rows of an uncommitted pack (docs/reliability.md O6), and packs are read in
offset order, one reader per pack.
"""
from __future__ import annotations

import datetime as dt
from array import array
from dataclasses import dataclass
from typing import Callable, Iterator

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


#: Mails per page of a paged selection: their rows, facts and placements are held for one page at a time.
PAGE = 10_000


def _stored(rows: list[tuple], names: dict[str, str]) -> list[StoredMessage]:
    return [
        StoredMessage(
            msg_id=r[0], blob_id=r[1], size=r[2], subject=r[3], sent_date=r[4], internal_date=r[5],
            message_id=r[6], medium_id=r[7], pack_name=names.setdefault(r[8], r[8]),
            entry=IndexEntry(blob_id=bytes.fromhex(r[1]), offset=r[9], length=r[10], size=r[2], csize=r[11]),
        )
        for r in rows
    ]


class Selection:
    """The selected messages of an export, fixed in one catalog session as their msg_ids in pack order (8 bytes a
    mail), their rows read a page at a time (docs/reliability.md K8: a million StoredMessage took ~1 GB).

    Each page is read in a short session of its own, so an import can commit between pages (O6); the selection
    stays the one made at the start: a message that left the catalog since (purged) is given to ``gone``.
    """

    def __init__(self, archive: Archive, ids: array):
        self.archive = archive
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, drop: set[int]) -> "Selection":
        """The same selection less the msg_ids in ``drop``."""
        return Selection(self.archive, array("q", (i for i in self.ids if i not in drop)) if drop else self.ids)

    def pages(self, size: int | None = None, gone: Callable[[int], None] | None = None) -> Iterator[list[StoredMessage]]:
        """The selection as lists of at most ``size`` (:data:`PAGE`) StoredMessage, in pack order."""
        size = int(size or PAGE)
        names: dict[str, str] = {}  # one string per pack name, not one per mail
        for start in range(0, len(self.ids), size):
            want = self.ids[start:start + size].tolist()
            with self.archive.catalog.reading() as con:
                rows = reads.stored_messages_of(con, want)
            if gone is not None and len(rows) < len(want):
                have = {r[0] for r in rows}
                for msg_id in want:
                    if msg_id not in have:
                        gone(msg_id)
            yield _stored(rows, names)

    def mails(self, on_page: Callable[[list[StoredMessage]], None] | None = None,
              gone: Callable[[int], None] | None = None, size: int | None = None) -> Iterator[StoredMessage]:
        """Every selected message, a page read at a time; ``on_page(page)`` runs before a page's first message is
        given (an exporter reads that page's facts and placements there)."""
        for page in self.pages(size, gone):
            if on_page is not None:
                on_page(page)
            yield from page


def select_paged(archive: Archive, where: str | None = None, params: list | None = None) -> Selection:
    """What :func:`select_messages` selects, as a :class:`Selection` read by pages."""
    ids = array("q")
    with archive.catalog.querying() as session:
        try:
            for batch in reads.stored_message_ids(session, where, params):
                ids.extend(batch.column(0).to_pylist())
        except Exception as exc:  # duckdb.Error for a bad --where
            raise UsageError(f"the selection failed: {exc}") from None
    return Selection(archive, ids)


def twins_to_leave_out(archive: Archive, selection: Selection) -> tuple[Selection, list[dict]]:
    """:func:`prefer_originals` of a paged selection: the same mails left out, found by DuckDB with the
    selection's msg_ids as one Arrow column (no object per mail; docs/dedup.md)."""
    with archive.catalog.reading() as con:
        drop = reads.converted_twins_within(con, selection.ids)
    return selection.without(set(drop)), [{"msg_id": c, "original_msg_id": o} for c, o in sorted(drop.items())]


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
