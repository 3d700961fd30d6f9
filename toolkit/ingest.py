"""The ingest pipeline (DESIGN §6): source → header scan → dedup → seal → pack → catalog commit.

Order of durability (RELIABILITY R1): a pack is written under a temporary
name, flushed and renamed; only then are its catalog rows committed, in the
same transaction as the sightings and the source cursor. A crash before the
commit leaves at most an orphan pack (listed by verify, never counted); the
rerun reads again from the last committed cursor.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import pyarrow as pa

from . import faults
from .archive import Archive
from .headers import MailMeta, scan
from .pack import PACK_TARGET_SIZE, PackInfo, PackWriter
from .reporter import NullReporter, Reporter
from .source import Importer, RunSummary, SourceMail, SourceProblem, SourceSkip

CHUNK = 256

NEW, EXACT, DUPLICATE, ID_CONFLICT = "new", "exact-duplicate", "duplicate", "id-conflict"

_TS = pa.timestamp("us", tz="UTC")

MESSAGE_SCHEMA = pa.schema(
    [
        ("msg_id", pa.int64()), ("blob_id", pa.string()), ("dedup_key", pa.string()),
        ("pack_id", pa.string()), ("offset", pa.int64()), ("length", pa.int64()),
        ("size", pa.int64()), ("csize", pa.int64()), ("message_id", pa.string()),
        ("subject", pa.string()), ("from_addr", pa.string()), ("from_name", pa.string()),
        ("sent_date", _TS), ("internal_date", _TS), ("spam", pa.bool_()), ("defects", pa.string()),
        ("id_conflict", pa.bool_()), ("archived_at", _TS), ("run_id", pa.int32()), ("batch_id", pa.int32()),
    ]
)
RECIPIENT_SCHEMA = pa.schema([("msg_id", pa.int64()), ("kind", pa.string()), ("address", pa.string())])
SIGHTING_SCHEMA = pa.schema(
    [
        ("msg_id", pa.int64()), ("run_id", pa.int32()), ("source_uri", pa.string()), ("folder", pa.string()),
        ("source_ref", pa.string()), ("via", pa.string()), ("decision", pa.string()), ("flags", pa.string()),
        ("internal_date", _TS), ("seen_at", _TS),
    ]
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(d: dt.datetime | None) -> dt.datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


@dataclass
class _Pending:
    """Everything decided since the last commit."""

    messages: list[dict] = field(default_factory=list)      # new messages; msg_id assigned at commit
    recipients: list[tuple[int, str, str]] = field(default_factory=list)  # (pending index, kind, address)
    sightings: list[dict] = field(default_factory=list)     # "target": ("new", idx) | ("old", msg_id)
    errors: list[tuple[str, str, str]] = field(default_factory=list)       # (kind, ref, message)
    conflicts: set[int] = field(default_factory=set)        # existing msg_ids now in an id-conflict
    cursor: Any = None
    has_cursor: bool = False
    blob_index: dict[str, int] = field(default_factory=dict)
    dedup_index: dict[str, int] = field(default_factory=dict)
    mid_index: dict[str, tuple[int, str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.messages or self.sightings or self.errors or self.has_cursor)


class Ingest:
    """One import run into an archive opened as writer."""

    def __init__(
        self,
        archive: Archive,
        reporter: Reporter | None = None,
        *,
        command: str = "import",
        pack_target: int | None = None,
        chunk: int = CHUNK,
    ):
        if archive.lock is None:
            raise RuntimeError("ingest needs an archive opened as writer")
        self.archive = archive
        self.reporter = reporter or NullReporter()
        self.command = command
        # MAILARCHIVE_PACK_TARGET (bytes) is a tuning and test knob: small packs make crash tests meaningful.
        self.pack_target = pack_target or int(os.environ.get("MAILARCHIVE_PACK_TARGET") or PACK_TARGET_SIZE)
        self.chunk = chunk
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Finish the current chunk, commit it, and end the run as interrupted."""
        self._stop.set()

    # -- run bookkeeping ----------------------------------------------------------------------
    def _open_run(self, source_uri: str) -> tuple[int, Any]:
        with self.archive.catalog.writing() as con:
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0]
            con.execute(
                "INSERT INTO runs (run_id, command, source_uri, started_at, status, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                [run_id, self.command, source_uri, _utcnow(), os.getpid(), socket.gethostname()],
            )
            row = con.execute("SELECT cursor FROM cursors WHERE source_uri = ?", [source_uri]).fetchone()
        cursor = json.loads(row[0]) if row else None
        if isinstance(cursor, dict) and cursor.get("complete"):
            cursor = None  # the last run finished: a new run reads the whole source again, dedup decides
        return run_id, cursor

    def _close_run(self, summary: RunSummary) -> None:
        with self.archive.catalog.writing() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                [_utcnow(), summary.status, summary.run_id],
            )

    # -- the run ---------------------------------------------------------------------------------
    def run(self, importer: Importer) -> RunSummary:
        started = time.monotonic()
        run_id, cursor = self._open_run(importer.source_uri)
        summary = RunSummary(run_id=run_id, source_uri=importer.source_uri)
        self._summary = summary
        self._importer = importer
        self._writer: PackWriter | None = None
        self._pending = _Pending()
        self.reporter.start("import", None, "mails")
        try:
            items = importer.scan(cursor, self.reporter)
            exhausted = False
            while not self._stop.is_set():
                chunk = _take(items, self.chunk)
                if not chunk:
                    exhausted = True
                    break
                self._process(chunk)
                if self._writer is not None and self._writer.size >= self.pack_target:
                    self._commit()
            if exhausted:
                self._pending.cursor = {"complete": True, "last": self._pending.cursor if self._pending.has_cursor else None}
                self._pending.has_cursor = True
            self._commit()
            summary.status = "complete" if exhausted else "interrupted"
        except BaseException:
            if self._writer is not None:
                self._writer.abort()
            summary.status = "failed"
            summary.seconds = time.monotonic() - started
            try:
                self._close_run(summary)
            except Exception:  # the original error matters more
                pass
            raise
        finally:
            self.reporter.finish("import")
        summary.seconds = time.monotonic() - started
        self._close_run(summary)
        return summary

    def _process(self, chunk: list) -> None:
        pending, summary = self._pending, self._summary
        mails: list[tuple[SourceMail, str, MailMeta]] = []
        for item in chunk:
            if isinstance(item, SourceMail):
                faults.hit("after_source_read")
                mails.append((item, hashlib.sha256(item.raw).hexdigest(), scan(item.raw)))
            elif isinstance(item, SourceProblem):
                pending.errors.append(("error", item.ref, item.message))
                summary.errors += 1
                summary.problems.append({"ref": item.ref, "kind": "error", "message": item.message})
                self.reporter.warn(f"{item.ref}: {item.message}")
            elif isinstance(item, SourceSkip):
                pending.errors.append(("skipped", item.ref, item.reason))
                summary.skipped += 1
                summary.problems.append({"ref": item.ref, "kind": "skipped", "message": item.reason})
            if item.cursor is not None:
                pending.cursor, pending.has_cursor = item.cursor, True
        if not mails:
            return
        known_blobs, known_keys, known_mids = self._lookup(mails)
        for item, blob_id, meta in mails:
            summary.seen += 1
            summary.bytes += len(item.raw)
            dkey = meta.dedup_key.hex()
            if blob_id in pending.blob_index:
                decision, target = EXACT, ("new", pending.blob_index[blob_id])
            elif blob_id in known_blobs:
                decision, target = EXACT, ("old", known_blobs[blob_id])
            elif dkey in pending.dedup_index:
                decision, target = DUPLICATE, ("new", pending.dedup_index[dkey])
            elif dkey in known_keys:
                decision, target = DUPLICATE, ("old", known_keys[dkey])
            else:
                conflict = None
                if meta.message_id:
                    conflict = pending.mid_index.get(meta.message_id) or known_mids.get(meta.message_id)
                idx = self._store_new(item, blob_id, meta, id_conflict=conflict is not None)
                target = ("new", idx)
                if conflict is not None:
                    decision = ID_CONFLICT
                    kind, ref = conflict
                    if kind == "old":
                        pending.conflicts.add(ref)
                    else:
                        pending.messages[ref]["id_conflict"] = True
                else:
                    decision = NEW
            if decision in (EXACT, DUPLICATE):
                summary.duplicates += 1
            else:
                summary.archived += 1
            summary.decisions[decision] = summary.decisions.get(decision, 0) + 1
            pending.sightings.append(
                {
                    "target": target,
                    "folder": item.folder,
                    "source_ref": item.ref,
                    "decision": decision,
                    "flags": "".join(sorted(item.flags)) if item.flags else None,
                    "internal_date": _aware(item.internal_date),
                }
            )
            self.reporter.advance("import", 1, bytes=len(item.raw), archived=summary.archived)

    def _store_new(self, item: SourceMail, blob_id: str, meta: MailMeta, id_conflict: bool) -> int:
        pending = self._pending
        if self._writer is None:
            storage = self.archive.storage(self.archive.active_medium_id())
            self._writer = PackWriter(storage, self.archive.key, self.archive.uuid)
        entry = self._writer.add(bytes.fromhex(blob_id), item.raw)
        idx = len(pending.messages)
        pending.messages.append(
            {
                "blob_id": blob_id,
                "dedup_key": meta.dedup_key.hex(),
                "pack_id": self._writer.pack_id.hex(),
                "offset": entry.offset,
                "length": entry.length,
                "size": entry.size,
                "csize": entry.csize,
                "message_id": meta.message_id,
                "subject": meta.subject,
                "from_addr": meta.from_addr,
                "from_name": meta.from_name,
                "sent_date": _aware(meta.sent_date),
                "internal_date": _aware(item.internal_date),
                "spam": bool(meta.spam),
                "defects": ",".join(meta.defects) if meta.defects else None,
                "id_conflict": id_conflict,
            }
        )
        for kind, addrs in (("to", meta.to), ("cc", meta.cc), ("bcc", meta.bcc)):
            for a in addrs:
                pending.recipients.append((idx, kind, a))
        pending.blob_index[blob_id] = idx
        pending.dedup_index[meta.dedup_key.hex()] = idx
        if meta.message_id:
            pending.mid_index.setdefault(meta.message_id, ("new", idx))
        return idx

    def _lookup(self, mails) -> tuple[dict[str, int], dict[str, int], dict[str, tuple[str, int]]]:
        """Which blob ids, dedup keys and Message-IDs of this chunk the catalog already holds."""
        keys = pa.table(
            {
                "blob_id": [b for _, b, _ in mails],
                "dedup_key": [m.dedup_key.hex() for _, _, m in mails],
                "message_id": [m.message_id for _, _, m in mails],
            }
        )
        with self.archive.catalog.reading() as con:
            con.register("chunk_keys", keys)
            blobs = con.execute(
                "SELECT m.blob_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT blob_id FROM chunk_keys) k USING (blob_id) GROUP BY 1"
            ).fetchall()
            dkeys = con.execute(
                "SELECT m.dedup_key, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT dedup_key FROM chunk_keys) k USING (dedup_key) GROUP BY 1"
            ).fetchall()
            mids = con.execute(
                "SELECT m.message_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT message_id FROM chunk_keys WHERE message_id IS NOT NULL) k USING (message_id) GROUP BY 1"
            ).fetchall()
            con.unregister("chunk_keys")
        return dict(blobs), dict(dkeys), {m: ("old", i) for m, i in mids}

    # -- commit ------------------------------------------------------------------------------------
    def _commit(self) -> None:
        pending, summary = self._pending, self._summary
        if pending.empty() and self._writer is None:
            return
        info: PackInfo | None = None
        if self._writer is not None:
            info = self._writer.seal()
            self._writer = None
            summary.packs += 1
            faults.hit("after_pack_seal")
        medium_id = self.archive.active_medium_id()
        now = _utcnow()
        run_id = summary.run_id
        with self.archive.catalog.writing() as con:
            base = con.execute("SELECT coalesce(max(msg_id), 0) + 1 FROM messages").fetchone()[0]
            if info is not None:
                con.execute(
                    "INSERT INTO packs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [info.pack_id.hex(), medium_id, info.name, info.bytes, info.records, info.sha256.hex(), now, run_id],
                )
            if pending.messages:
                cols = {name: [] for name in MESSAGE_SCHEMA.names}
                for i, m in enumerate(pending.messages):
                    row = {**m, "msg_id": base + i, "archived_at": now, "run_id": run_id, "batch_id": None}
                    for name in MESSAGE_SCHEMA.names:
                        cols[name].append(row[name])
                con.register("new_messages", pa.table(cols, schema=MESSAGE_SCHEMA))
                con.execute("INSERT INTO messages BY NAME SELECT * FROM new_messages")
                con.unregister("new_messages")
            if pending.recipients:
                rec = pa.table(
                    {
                        "msg_id": [base + i for i, _, _ in pending.recipients],
                        "kind": [k for _, k, _ in pending.recipients],
                        "address": [a for _, _, a in pending.recipients],
                    },
                    schema=RECIPIENT_SCHEMA,
                )
                con.register("new_recipients", rec)
                con.execute("INSERT INTO recipients BY NAME SELECT * FROM new_recipients")
                con.unregister("new_recipients")
            if pending.sightings:
                cols = {name: [] for name in SIGHTING_SCHEMA.names}
                for s in pending.sightings:
                    kind, ref = s["target"]
                    row = {
                        **s,
                        "msg_id": base + ref if kind == "new" else ref,
                        "run_id": run_id,
                        "source_uri": self._importer.source_uri,
                        "via": self._importer.via,
                        "seen_at": now,
                    }
                    for name in SIGHTING_SCHEMA.names:
                        cols[name].append(row[name])
                con.register("new_sightings", pa.table(cols, schema=SIGHTING_SCHEMA))
                con.execute("INSERT INTO sightings BY NAME SELECT * FROM new_sightings")
                con.unregister("new_sightings")
            if pending.conflicts:
                con.execute(
                    "UPDATE messages SET id_conflict = true WHERE msg_id IN (SELECT unnest(?))",
                    [sorted(pending.conflicts)],
                )
            for kind, ref, message in pending.errors:
                con.execute("INSERT INTO run_errors VALUES (?, ?, ?, ?)", [run_id, kind, ref, message])
            if pending.has_cursor:
                con.execute(
                    "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)",
                    [self._importer.source_uri, json.dumps(pending.cursor), now, run_id],
                )
            con.execute(
                "UPDATE runs SET seen = ?, archived = ?, duplicates = ?, merged = ?, errors = ?, bytes = ? WHERE run_id = ?",
                [summary.seen, summary.archived, summary.duplicates, summary.merged, summary.errors, summary.bytes, run_id],
            )
        faults.hit("after_db_commit")
        self._pending = _Pending()


def _take(it: Iterator, n: int) -> list:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


def ingest(archive: Archive, importer: Importer, reporter: Reporter | None = None, **kw) -> RunSummary:
    return Ingest(archive, reporter, **kw).run(importer)
