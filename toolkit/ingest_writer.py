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
from dataclasses import dataclass, field
from typing import Any

from . import faults
from .catalog import Catalog
from .catalog import ingest_rows as store
from .pack import PackInfo
from .source import RunSummary


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class PendingRows:
    """Everything decided since the last commit."""

    messages: list[dict] = field(default_factory=list)      # new messages; msg_id assigned at commit
    recipients: list[tuple[tuple, str, str]] = field(default_factory=list)  # (target, kind, address)
    envelopes: list[tuple[tuple, str, str]] = field(default_factory=list)   # (target, text, sha256)
    sightings: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)       # (kind, ref, message)
    conflicts: set[int] = field(default_factory=set)        # archived msg_ids now in an id-conflict
    conversions: list[tuple[tuple, str, str]] = field(default_factory=list)  # (target, source kind, converter)
    links: list[tuple[tuple, tuple, str, str]] = field(default_factory=list)  # (target, parent target, kind, ref)
    cursor: Any = None
    has_cursor: bool = False

    def empty(self) -> bool:
        return not (self.messages or self.sightings or self.errors or self.has_cursor or self.envelopes)

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

    def __init__(self, catalog: Catalog, command: str, source_uri: str, via: str):
        self.catalog = catalog
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

    def commit(self, pack: PackInfo | None, medium_id: int, summary: RunSummary) -> Committed:
        """Commit the pending rows (with the sealed pack's row, if any) in one transaction."""
        rows, now = self.rows, _utcnow()
        with self.catalog.writing() as con:
            base = store.next_msg_id(con)
            if pack is not None:
                store.append_rows(con, "packs", [self._pack_row(pack, medium_id, now)])
            store.append_rows(con, "messages", [
                {**m, "msg_id": base + i, "archived_at": now, "run_id": self.run_id, "batch_id": None}
                for i, m in enumerate(rows.messages)])
            store.append_rows(con, "recipients", [
                {"msg_id": _msg_id(t, base), "kind": kind, "address": address} for t, kind, address in rows.recipients])
            if rows.envelopes:
                env_base = store.next_envelope_id(con)
                store.append_rows(con, "envelopes", [
                    {"envelope_id": env_base + i, "msg_id": _msg_id(t, base), "run_id": self.run_id, "text": text,
                     "sha256": sha, "learned_at": now, "batch_id": None}
                    for i, (t, text, sha) in enumerate(rows.envelopes)])
            store.append_rows(con, "sightings", [self._sighting_row(s, base, now) for s in rows.sightings])
            store.append_rows(con, "conversions", [
                {"msg_id": _msg_id(t, base), "source_kind": kind, "converter": conv} for t, kind, conv in rows.conversions])
            store.add_links(con, [
                {"msg_id": _msg_id(t, base), "parent_msg_id": _msg_id(pt, base), "kind": kind, "run_id": self.run_id,
                 "source_ref": ref} for t, pt, kind, ref in rows.links])
            if rows.conflicts:
                store.flag_id_conflicts(con, sorted(rows.conflicts))
            store.append_rows(con, "run_errors", [
                {"run_id": self.run_id, "kind": kind, "source_ref": ref, "message": message}
                for kind, ref, message in rows.errors])
            if rows.has_cursor:
                store.save_cursor(con, self.source_uri, rows.cursor, now, self.run_id)
            store.save_run_counts(con, self.run_id, seen=summary.seen, archived=summary.archived,
                                  duplicates=summary.duplicates, merged=summary.merged, errors=summary.errors,
                                  bytes=summary.bytes)
        if rows.has_cursor:
            self.last_cursor = rows.cursor
        faults.hit("after_db_commit")
        self.rows = PendingRows()
        return Committed(
            {m["blob_id"]: base + i for i, m in enumerate(rows.messages)},
            {m["dedup_key"]: base + i for i, m in enumerate(rows.messages)},
            {m["message_id"]: base + i for i, m in reversed(list(enumerate(rows.messages))) if m["message_id"]},
            base,
        )

    def _pack_row(self, pack: PackInfo, medium_id: int, now: dt.datetime) -> dict:
        return {"pack_id": pack.pack_id.hex(), "medium_id": medium_id, "name": pack.name, "bytes": pack.bytes,
                "records": pack.records, "sha256": pack.sha256.hex(), "created_at": now, "run_id": self.run_id}

    def _sighting_row(self, s: dict, base: int, now: dt.datetime) -> dict:
        return {**s, "msg_id": _msg_id(s["target"], base), "run_id": self.run_id, "source_uri": self.source_uri,
                "via": s.get("item_via") or self.via, "seen_at": now}


def _msg_id(target: tuple, base: int) -> int:
    kind, ref = target
    return base + ref if kind == "new" else ref
