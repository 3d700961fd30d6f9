"""The writer of an import run: the rows decided since the last commit, and their commit through the
catalog store (:mod:`toolkit.catalog.ingest_rows`).

A commit is one transaction: the sealed pack's row, its messages and
recipients, the envelopes learned, every sighting, the id-conflict flags, the
run's errors, the source cursor and the run's counters (docs/reliability.md:
the pack is on the medium before its rows are committed). Targets are those
of :mod:`toolkit.dedup`: ``("new", i)`` is the i-th message of this commit,
``("old", msg_id)`` an archived one.
"""
from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from . import faults
from .catalog import Catalog
from .catalog import ingest_rows as store
from .pack import PackInfo
from .source import RunSummary


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


MESSAGE_COLUMNS = ("blob_id", "dedup_key", "pack_id", "offset", "length", "size", "csize", "message_id", "subject",
                   "from_addr", "from_name", "sent_date", "internal_date", "spam", "defects", "id_conflict")
SIGHTING_COLUMNS = ("target", "folder", "source_ref", "decision", "flags", "internal_date", "item_via")


class Columns:
    """Rows held as one list per column: a commit turns each list into an Arrow array at once."""

    def __init__(self, names: tuple[str, ...]):
        self.lists: dict[str, list] = {name: [] for name in names}

    def add(self, **row: Any) -> None:
        """One row: a value for every column."""
        if len(row) != len(self.lists):
            raise TypeError(f"a row needs exactly the columns {list(self.lists)}, got {list(row)}")
        for name, values in self.lists.items():
            values.append(row[name])

    def __getitem__(self, name: str) -> list:
        return self.lists[name]

    def __len__(self) -> int:
        return len(next(iter(self.lists.values())))


@dataclass
class PendingRows:
    """Everything decided since the last commit."""

    messages: Columns = field(default_factory=lambda: Columns(MESSAGE_COLUMNS))  # new; msg_id assigned at commit
    recipients: list[tuple[tuple, str, str]] = field(default_factory=list)  # (target, kind, address)
    envelopes: list[tuple[tuple, str, str]] = field(default_factory=list)   # (target, text, sha256)
    sightings: Columns = field(default_factory=lambda: Columns(SIGHTING_COLUMNS))
    errors: list[tuple[str, str, str]] = field(default_factory=list)       # (kind, ref, message)
    conflicts: set[int] = field(default_factory=set)        # archived msg_ids now in an id-conflict
    conversions: list[tuple[tuple, str, str]] = field(default_factory=list)  # (target, source kind, converter)
    links: list[tuple[tuple, tuple, str, str]] = field(default_factory=list)  # (target, parent target, kind, ref)
    cursor: Any = None
    has_cursor: bool = False

    def empty(self) -> bool:
        return not (len(self.messages) or len(self.sightings) or self.errors or self.has_cursor or self.envelopes)

    def set_cursor(self, cursor: Any) -> None:
        self.cursor, self.has_cursor = cursor, True


@dataclass
class Committed:
    """The keys a commit archived (key -> msg_id), for the run's known-keys index."""

    blobs: dict[str, int]
    keys: dict[str, int]
    mids: dict[str, int]
    base: int = 0  # the msg_id of the commit's first new message (target ("new", i) is base + i)


class IngestWriter:
    """The run row, the pending rows and their commits for one import run of one source."""

    def __init__(self, catalog: Catalog, command: str, source_uri: str, via: str, owner: str | None = None):
        self.catalog = catalog
        self.owner = owner  # the mailbox's owner, recorded on every sighting (a migration plan names it)
        self.command = command
        self.source_uri = source_uri
        self.via = via
        self.run_id: int | None = None
        self.rows = PendingRows()
        self.last_cursor: Any = None  # the last cursor committed in this run (or the one it started from)

    def open_run(self, incremental: bool, pid: int, host: str) -> Any:
        """Start the run's row; returns the cursor the run reads the source from (None: from its start)."""
        self.run_id, stored = store.start_run(self.catalog, self.command, self.source_uri, _utcnow(), pid, host)
        self.last_cursor = store.resume_point(stored, incremental)
        return self.last_cursor

    def close_run(self, status: str) -> None:
        store.finish_run(self.catalog, self.run_id, status, _utcnow())

    def mark_complete(self) -> None:
        """The source is exhausted: the next commit saves a cursor that says so."""
        rows = self.rows
        rows.set_cursor({"complete": True, "last": rows.cursor if rows.has_cursor else self.last_cursor})

    def commit(self, pack: PackInfo | None, medium_id: int, summary: RunSummary, also: list[PackInfo] = (),
               base: int | None = None) -> Committed:
        """Commit the pending rows (with the sealed pack's row, if any, and those of ``also``) in one
        transaction: one Arrow append per table, its columns built whole (no loop over the rows in Python).

        ``base``: the msg_id the driver expects the first new message to get (it decided later tasks against
        these messages before this commit: docs/dedup.md "Deciding ahead"); another one rolls the transaction
        back with an error, nothing written."""
        rows, now = self.rows, _utcnow()
        with self.catalog.writing() as con:
            expected, base = base, store.next_msg_id(con)
            if expected is not None and rows.messages and expected != base:
                raise AssertionError(f"the catalog's next msg_id is {base}, the run decided with {expected}: "
                                     f"another writer changed the catalog during the import")
            if pack is not None:
                store.add_packs(con, [self._pack_row(p, medium_id, now) for p in (pack, *also)])
            self._append_messages(con, rows.messages, base, now)
            self._append_recipients(con, rows.recipients, base)
            if rows.envelopes:
                self._append_envelopes(con, rows.envelopes, base, store.next_envelope_id(con), now)
            self._append_sightings(con, rows.sightings, base, now)
            self._append_conversions(con, rows.conversions, base)
            if rows.links:
                store.add_links(con, [
                    {"msg_id": _msg_id(t, base), "parent_msg_id": _msg_id(pt, base), "kind": kind,
                     "run_id": self.run_id, "source_ref": ref} for t, pt, kind, ref in rows.links])
            if rows.conflicts:
                store.flag_id_conflicts(con, sorted(rows.conflicts))
            self._append_errors(con, rows.errors)
            if rows.has_cursor:
                store.save_cursor(con, self.source_uri, rows.cursor, now, self.run_id)
            store.save_run_counts(con, self.run_id, seen=summary.seen, archived=summary.archived,
                                  duplicates=summary.duplicates, merged=summary.merged, errors=summary.errors,
                                  bytes=summary.bytes)
        if rows.has_cursor:
            self.last_cursor = rows.cursor
        faults.hit("after_db_commit")
        self.rows = PendingRows()
        ids = range(base, base + len(rows.messages))
        mids = dict(zip(reversed(rows.messages["message_id"]), reversed(ids)))  # the first message with an id wins
        mids.pop(None, None)
        mids.pop("", None)
        return Committed(dict(zip(rows.messages["blob_id"], ids)), dict(zip(rows.messages["dedup_key"], ids)), mids,
                         base)

    def _append_messages(self, con, messages: Columns, base: int, now: dt.datetime) -> None:
        n = len(messages)
        store.append_columns(con, "messages", {
            **messages.lists, "msg_id": pa.array(range(base, base + n), pa.int64()),
            "archived_at": _same(now, _TS, n), "run_id": _same(self.run_id, pa.int32(), n),
            "batch_id": pa.nulls(n, pa.int32())}, n)

    def _append_recipients(self, con, recipients: list[tuple[tuple, str, str]], base: int) -> None:
        if recipients:
            targets, kinds, addresses = zip(*recipients)
            store.append_columns(con, "recipients", {"msg_id": _msg_ids(targets, base), "kind": kinds,
                                                     "address": addresses}, len(recipients))

    def _append_envelopes(self, con, envelopes: list[tuple[tuple, str, str]], base: int, env_base: int,
                          now: dt.datetime) -> None:
        n = len(envelopes)
        targets, texts, shas = zip(*envelopes)
        store.append_columns(con, "envelopes", {
            "envelope_id": range(env_base, env_base + n), "msg_id": _msg_ids(targets, base),
            "run_id": [self.run_id] * n, "text": texts, "sha256": shas, "learned_at": [now] * n,
            "batch_id": pa.nulls(n, pa.int32())}, n)

    def _append_sightings(self, con, sightings: Columns, base: int, now: dt.datetime) -> None:
        n = len(sightings)
        if not n:
            return
        cols = dict(sightings.lists)
        item_vias = cols.pop("item_via")
        vias = list(map({None: self.via}.get, item_vias, item_vias))  # the item's own, else the run's
        msg_ids = _msg_ids(cols.pop("target"), base)
        store.append_columns(con, "sightings", {
            **cols, "msg_id": msg_ids, "run_id": _same(self.run_id, pa.int32(), n),
            "source_uri": _same(self.source_uri, pa.string(), n), "via": vias, "seen_at": _same(now, _TS, n),
            "owner": _same(self.owner, pa.string(), n)}, n)

    def _append_conversions(self, con, conversions: list[tuple[tuple, str, str]], base: int) -> None:
        if conversions:
            targets, kinds, converters = zip(*conversions)
            store.append_columns(con, "conversions", {"msg_id": _msg_ids(targets, base), "source_kind": kinds,
                                                      "converter": converters}, len(conversions))

    def _append_errors(self, con, errors: list[tuple[str, str, str]]) -> None:
        if errors:
            kinds, refs, messages = zip(*errors)
            store.append_columns(con, "run_errors", {"run_id": [self.run_id] * len(errors), "kind": kinds,
                                                     "source_ref": refs, "message": messages}, len(errors))

    def _pack_row(self, pack: PackInfo, medium_id: int, now: dt.datetime) -> dict:
        return {"pack_id": pack.pack_id.hex(), "medium_id": medium_id, "name": pack.name, "bytes": pack.bytes,
                "records": pack.records, "blake3": pack.blake3.hex(), "created_at": now, "run_id": self.run_id}


_TS = pa.timestamp("us", tz="UTC")


def _same(value: Any, type_: pa.DataType, n: int) -> pa.Array:
    """A column of ``n`` times ``value`` (one conversion, not one per row)."""
    return pa.repeat(pa.scalar(value, type_), n)


def _msg_ids(targets: tuple | list, base: int) -> pa.Array:
    """The msg_id of each target: ``("new", i)`` is ``base + i``, ``("old", msg_id)`` is itself."""
    kinds, refs = zip(*targets)
    # built-in functions mapped over the columns: no Python line per row, and no pyarrow.compute (its
    # import is about 50 ms of the driver's start-up, bench/RESULTS.md "Commit cost")
    offsets = map({"new": base, "old": 0}.__getitem__, kinds)
    return pa.array(list(map(operator.add, refs, offsets)), pa.int64())


def _msg_id(target: tuple, base: int) -> int:
    """The msg_id of one target (see :func:`_msg_ids`)."""
    kind, ref = target
    return base + ref if kind == "new" else ref
