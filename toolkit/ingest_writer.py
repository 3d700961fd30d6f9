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
from itertools import chain
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from . import faults
from .catalog import Catalog
from .errors import CatalogMemoryLimitError
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
class Part:
    """One task's share of a commit (:meth:`IngestWriter.commit_parts`): its pending rows, the packs they point
    into, and the msg_id its first new message is expected to get (None: the catalog's next)."""

    rows: PendingRows
    packs: list[PackInfo]
    base: int | None = None
    committed: "Committed | None" = None  # set by the commit


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
        transaction (:meth:`commit_parts` with one part)."""
        part = Part(self.rows, [pack, *also] if pack is not None else [], base)
        self.commit_parts([part], medium_id, summary)
        return part.committed

    def commit_parts(self, parts: list["Part"], medium_id: int, summary: RunSummary) -> None:
        """:meth:`_commit_parts`; a commit that needs more memory than the import's DuckDB memory limit
        (``IMPORT_MEMORY_LIMIT``: it bounds every commit measured, docs/reliability.md K8) is rolled back and made
        again under twice, four times, then without the limit (``Catalog.lift_memory_limit``), the lifted limit
        kept for the rest of the run: a larger catalog than any measured costs memory, never the import."""
        while True:
            try:
                self._commit_parts(parts, medium_id, summary)
                return
            except CatalogMemoryLimitError:
                if self.catalog.memory_limit is None or not self._rolled_back(parts):
                    raise
            # outside the handler: the failed attempt's frames (and the DuckDB objects they hold) are gone
            self.catalog.lift_memory_limit()

    def _rolled_back(self, parts: list["Part"]) -> bool:
        """After a failed commit of ``parts``: the catalog holds none of their messages (the failed attempt numbered
        them from ``parts[0].base``), so committing them again cannot store one twice."""
        first = next((part.base for part in parts if part.base is not None), None)
        with self.catalog.reading() as con:
            return first is None or store.next_msg_id(con) == first

    def _commit_parts(self, parts: list["Part"], medium_id: int, summary: RunSummary) -> None:
        """Commit the rows of several tasks, in order, with their packs' rows, in one transaction (the driver
        gives the tasks whose packs are written together: docs/dedup.md "Deciding ahead"): one Arrow append
        per table, its columns built whole (no loop over the rows in Python), the source cursor of the last
        part that has one and ``summary``'s counters. Each part's ``committed`` is set afterwards.

        A part's ``base``: the msg_id the driver expects its first new message to get (it decided later tasks
        against these messages before this commit); another one rolls the transaction back with an error,
        nothing written. The parts' new messages are numbered on from one to the next."""
        now = _utcnow()
        cursor = next((p.rows for p in reversed(parts) if p.rows.has_cursor), None)
        with self.catalog.writing() as con:
            first = nxt = store.next_msg_id(con)
            for part in parts:
                n = len(part.rows.messages)
                if part.base is not None and n and part.base != nxt:
                    raise AssertionError(f"the catalog's next msg_id is {nxt}, the run decided with {part.base}: "
                                         f"another writer changed the catalog during the import")
                part.base = nxt
                nxt += n
            packs = [p for part in parts for p in part.packs]
            if packs:
                store.add_packs(con, [self._pack_row(p, medium_id, now) for p in packs])
            self._append_messages(con, parts, first, nxt - first, now)
            self._append_recipients(con, parts)
            if any(part.rows.envelopes for part in parts):
                self._append_envelopes(con, parts, store.next_envelope_id(con), now)
            self._append_sightings(con, parts, now)
            self._append_conversions(con, parts)
            links = [{"msg_id": _msg_id(t, part.base), "parent_msg_id": _msg_id(pt, part.base), "kind": kind,
                      "run_id": self.run_id, "source_ref": ref} for part in parts for t, pt, kind, ref in part.rows.links]
            if links:
                store.add_links(con, links)
            conflicts = set().union(*(part.rows.conflicts for part in parts))
            if conflicts:
                store.flag_id_conflicts(con, sorted(conflicts))
            self._append_errors(con, [e for part in parts for e in part.rows.errors])
            if cursor is not None:
                store.save_cursor(con, self.source_uri, cursor.cursor, now, self.run_id)
            store.save_run_counts(con, self.run_id, seen=summary.seen, archived=summary.archived,
                                  duplicates=summary.duplicates, merged=summary.merged, errors=summary.errors,
                                  bytes=summary.bytes)
        if cursor is not None:
            self.last_cursor = cursor.cursor
        faults.hit("after_db_commit")
        self.rows = PendingRows()
        for part in parts:
            m, base = part.rows.messages, part.base
            ids = range(base, base + len(m))
            mids = dict(zip(reversed(m["message_id"]), reversed(ids)))  # the first message with an id wins
            mids.pop(None, None)
            mids.pop("", None)
            part.committed = Committed(dict(zip(m["blob_id"], ids)), dict(zip(m["dedup_key"], ids)), mids, base)

    def _append_messages(self, con, parts: list["Part"], base: int, n: int, now: dt.datetime) -> None:
        if not n:
            return
        lists = _joined([part.rows.messages.lists for part in parts], MESSAGE_COLUMNS)
        store.append_columns(con, "messages", {
            **lists, "msg_id": pa.array(range(base, base + n), pa.int64()),
            "archived_at": _same(now, _TS, n), "run_id": _same(self.run_id, pa.int32(), n),
            "batch_id": pa.nulls(n, pa.int32())}, n)

    def _append_recipients(self, con, parts: list["Part"]) -> None:
        msg_ids, kinds, addresses = _triples(parts, "recipients")
        if msg_ids:
            store.append_columns(con, "recipients", {"msg_id": pa.array(msg_ids, pa.int64()), "kind": kinds,
                                                     "address": addresses}, len(msg_ids))

    def _append_envelopes(self, con, parts: list["Part"], env_base: int, now: dt.datetime) -> None:
        msg_ids, texts, shas = _triples(parts, "envelopes")
        n = len(msg_ids)
        store.append_columns(con, "envelopes", {
            "envelope_id": range(env_base, env_base + n), "msg_id": pa.array(msg_ids, pa.int64()),
            "run_id": [self.run_id] * n, "text": texts, "sha256": shas, "learned_at": [now] * n,
            "batch_id": pa.nulls(n, pa.int32())}, n)

    def _append_sightings(self, con, parts: list["Part"], now: dt.datetime) -> None:
        parts = [part for part in parts if len(part.rows.sightings)]
        if not parts:
            return
        cols = _joined([part.rows.sightings.lists for part in parts], SIGHTING_COLUMNS[1:-1])
        n = len(cols["source_ref"])
        item_vias = _joined([part.rows.sightings.lists for part in parts], ("item_via",))["item_via"]
        vias = list(map({None: self.via}.get, item_vias, item_vias))  # the item's own, else the run's
        msg_ids = list(chain.from_iterable(_msg_id_list(part.rows.sightings["target"], part.base) for part in parts))
        store.append_columns(con, "sightings", {
            **cols, "msg_id": pa.array(msg_ids, pa.int64()), "run_id": _same(self.run_id, pa.int32(), n),
            "source_uri": _same(self.source_uri, pa.string(), n), "via": vias, "seen_at": _same(now, _TS, n),
            "owner": _same(self.owner, pa.string(), n)}, n)

    def _append_conversions(self, con, parts: list["Part"]) -> None:
        msg_ids, kinds, converters = _triples(parts, "conversions")
        if msg_ids:
            store.append_columns(con, "conversions", {"msg_id": pa.array(msg_ids, pa.int64()), "source_kind": kinds,
                                                      "converter": converters}, len(msg_ids))

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


def _triples(parts: list["Part"], table: str) -> tuple[list, list, list]:
    """The (target, a, b) rows of ``table`` (recipients, envelopes, conversions) of every part, as three columns:
    the targets turned into msg_ids from each part's own base."""
    msg_ids, first, second = [], [], []
    for part in parts:
        rows = getattr(part.rows, table)
        if rows:
            targets, a, b = zip(*rows)
            msg_ids += _msg_id_list(targets, part.base)
            first += a
            second += b
    return msg_ids, first, second


def _msg_id_list(targets: tuple | list, base: int) -> list[int]:
    """The msg_id of each target: ``("new", i)`` is ``base + i``, ``("old", msg_id)`` is itself."""
    kinds, refs = zip(*targets)
    # built-in functions mapped over the columns: no Python line per row, and no pyarrow.compute (its
    # import is about 50 ms of the driver's start-up, bench/RESULTS.md "Commit cost")
    offsets = map({"new": base, "old": 0}.__getitem__, kinds)
    return list(map(operator.add, refs, offsets))


def _joined(lists: list[dict[str, list]], names: tuple[str, ...]) -> dict[str, list]:
    """The columns ``names`` of several parts' column lists, each part's rows after the one's before (the lists
    themselves when there is one part)."""
    if len(lists) == 1:
        return {name: lists[0][name] for name in names}
    return {name: list(chain.from_iterable(one[name] for one in lists)) for name in names}


def _msg_id(target: tuple, base: int) -> int:
    """The msg_id of one target (see :func:`_msg_id_list`)."""
    kind, ref = target
    return base + ref if kind == "new" else ref
