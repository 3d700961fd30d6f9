"""The ingest pipeline (DESIGN §6): source → header scan → dedup → seal → pack → catalog commit.

Order of durability (RELIABILITY R1): a pack is written under a temporary
name, flushed and renamed; only then are its catalog rows committed, in the
same transaction as the sightings and the source cursor. A crash before the
commit leaves at most an orphan pack (listed by verify, never counted); the
rerun reads again from the last committed cursor.

Stopping (SIGINT/SIGTERM through :meth:`Ingest.request_stop`): the chunks in
flight get ``STOP_GRACE`` seconds to come back; then the worker processes
are killed, the chunks still out are dropped (their mails were not
committed, so the rerun reads them again), everything applied so far is
committed and the run ends as interrupted. A chunk prepared inline is
cancelled by the watchdog's timer (see :mod:`toolkit.prepare`).
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from array import array
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Iterator

import pyarrow as pa

from . import faults
from .archive import Archive
from .pack import PACK_TARGET_SIZE, PackInfo, PackWriter, open_record, pack_key
from .prepare import (DEFAULT_PARSE_LIMIT, STREAM_CHUNK, Cancelled, LocalFile, NotMail, Prepared, ReadFailure,
                      prepare_chunk, prepare_streamed)
from .reporter import NullReporter, Reporter
from .source import Importer, RunSummary, SourceMail, SourceProblem, SourceSkip, will_read

CHUNK = 256
CHUNK_BYTES = 8 * 1024 * 1024  # bounds memory: (workers + 1) chunks in flight
STOP_GRACE = 2.0               # seconds the chunks in flight get after a stop request

NEW, EXACT, DUPLICATE, ID_CONFLICT, JOURNAL_MERGE = "new", "exact-duplicate", "duplicate", "id-conflict", "journal-merge"

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
ENVELOPE_SCHEMA = pa.schema(
    [
        ("envelope_id", pa.int64()), ("msg_id", pa.int64()), ("run_id", pa.int32()), ("text", pa.string()),
        ("sha256", pa.string()), ("learned_at", _TS), ("batch_id", pa.int32()),
    ]
)
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
    """Everything decided since the last commit. Targets are ("new", pending index) or ("old", msg_id)."""

    messages: list[dict] = field(default_factory=list)      # new messages; msg_id assigned at commit
    recipients: list[tuple[tuple, str, str]] = field(default_factory=list)  # (target, kind, address)
    recipient_keys: dict[tuple, set] = field(default_factory=dict)          # target -> {(kind, address)}
    envelopes: list[tuple[tuple, str, str]] = field(default_factory=list)   # (target, text, sha256)
    envelope_keys: dict[tuple, set] = field(default_factory=dict)           # target -> {sha256}
    sightings: list[dict] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)       # (kind, ref, message)
    conflicts: set[int] = field(default_factory=set)        # existing msg_ids now in an id-conflict
    cursor: Any = None
    has_cursor: bool = False
    blob_index: dict[str, int] = field(default_factory=dict)
    dedup_index: dict[str, int] = field(default_factory=dict)
    mid_index: dict[str, tuple[str, int]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.messages or self.sightings or self.errors or self.has_cursor)

    def add_recipient(self, target: tuple, kind: str, address: str) -> bool:
        keys = self.recipient_keys.setdefault(target, set())
        if (kind, address) in keys:
            return False
        keys.add((kind, address))
        self.recipients.append((target, kind, address))
        return True


class KnownKeys:
    """Which keys the catalog may hold, without asking it for every chunk.

    What the catalog held when the run started is kept as sorted 60-bit
    prefixes (8 bytes a key): a key that misses there cannot be in the
    catalog from before the run. What this run committed is kept exactly
    (key -> first msg_id) up to ``RUN_KEYS_LIMIT`` messages (~30 MB); beyond that the
    run's keys move into prefix arrays too, and their hits are looked up in
    the catalog like the old ones. A fresh migration thus asks the catalog
    nothing, however many duplicates it holds.
    """

    RUN_KEYS_LIMIT = 50_000

    def __init__(self, blobs: list[int], keys: list[int], mids: list[int]):
        self._sets = [array("Q", sorted(x)) for x in (blobs, keys, mids)]
        self.run_blobs: dict[str, int] = {}
        self.run_keys: dict[str, int] = {}
        self.run_mids: dict[str, int] = {}

    @classmethod
    def load(cls, con) -> "KnownKeys":
        pre = "('0x' || substr({0}, 1, 15))::UBIGINT"
        blobs = [r[0] for r in con.execute(f"SELECT {pre.format('blob_id')} FROM messages").fetchall()]
        keys = [r[0] for r in con.execute(f"SELECT {pre.format('dedup_key')} FROM messages").fetchall()]
        mids = [_mid_hash(r[0]) for r in con.execute("SELECT DISTINCT message_id FROM messages WHERE message_id IS NOT NULL").fetchall()]
        return cls(blobs, keys, mids)

    def add(self, blobs: dict[str, int], keys: dict[str, int], mids: dict[str, int]) -> None:
        """Take in what a commit of this run added (key -> msg_id)."""
        self.run_blobs.update(blobs)
        self.run_keys.update(keys)
        for mid, msg_id in mids.items():
            self.run_mids.setdefault(mid, msg_id)
        if len(self.run_blobs) > self.RUN_KEYS_LIMIT:
            self._spill()

    def _spill(self) -> None:
        """Bound memory: the run's exact keys become prefixes (their hits go to the catalog)."""
        for i, new in enumerate((
            [int(b[:15], 16) for b in self.run_blobs],
            [int(k[:15], 16) for k in self.run_keys],
            [_mid_hash(m) for m in self.run_mids],
        )):
            if new:
                self._sets[i] = array("Q", sorted([*self._sets[i], *new]))
        self.run_blobs, self.run_keys, self.run_mids = {}, {}, {}

    @staticmethod
    def _has(arr: array, value: int) -> bool:
        i = bisect.bisect_left(arr, value)
        return i < len(arr) and arr[i] == value

    def may_hold(self, blob_id: str, dedup_key: str, message_id: str | None) -> bool:
        """True when the catalog must be asked about one of these keys."""
        b, k, m = self._sets
        return (
            self._has(b, int(blob_id[:15], 16))
            or self._has(k, int(dedup_key[:15], 16))
            or (message_id is not None and self._has(m, _mid_hash(message_id)))
        )


def _mid_hash(message_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(message_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


_SHIELDED = {signal.SIGINT, signal.SIGTERM}


def _submit_shielded(executor: ProcessPoolExecutor, *args) -> Future:
    """Submit with SIGINT/SIGTERM blocked, so that a worker spawned by this submit starts with them blocked.

    Ctrl-C signals the whole process group: a worker still importing its modules
    would die of it before ``_worker_init`` ignores it, and the broken pool would
    end the run with a traceback instead of an interrupted run with its summary.
    The mask is inherited through the spawn; a signal for the driver stays pending
    and is handled as soon as the submit returns.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SHIELDED)
    try:
        return executor.submit(*args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_init(fault_points: dict | None = None) -> None:
    """Workers leave signals to the driver, and die with it (a killed import leaves no stray process)."""
    faults.configure(**(fault_points or {}))  # the test fault points of the driver (toolkit/faults.py)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the driver died before prctl took effect
        os._exit(1)


def _prepare_in_worker(*args):
    """:func:`prepare_chunk` in a worker process, behind a fault point that can stall the worker
    outside the per-mail watchdog (tests: a stop request must still end the run)."""
    faults.hit("worker_prepare")
    return prepare_chunk(*args)


class Ingest:
    """One import run into an archive opened as writer.

    Reading the source, dedup decisions, pack writing and catalog commits
    happen in this process; hashing, header scanning, journal unwrapping and
    compress + seal fan out over worker processes once a source holds more
    than one chunk (MAILARCHIVE_WORKERS=0 keeps everything inline).
    """

    def __init__(
        self,
        archive: Archive,
        reporter: Reporter | None = None,
        *,
        command: str = "import",
        pack_target: int | None = None,
        chunk: int = CHUNK,
        workers: int | None = None,
        parse_limit: float | None = None,
    ):
        if archive.lock is None:
            raise RuntimeError("ingest needs an archive opened as writer")
        self.archive = archive
        self.reporter = reporter or NullReporter()
        self.command = command
        # MAILARCHIVE_PACK_TARGET (bytes) is a tuning and test knob: small packs make crash tests meaningful.
        self.pack_target = pack_target or int(os.environ.get("MAILARCHIVE_PACK_TARGET") or PACK_TARGET_SIZE)
        self.chunk = chunk
        if workers is None:
            workers = int(os.environ.get("MAILARCHIVE_WORKERS", os.cpu_count() or 1))
        self.workers = workers
        self.parse_limit = parse_limit or DEFAULT_PARSE_LIMIT  # the per-mail watchdog (toolkit.prepare)
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Finish the chunks in flight, commit them, and end the run as interrupted."""
        self._stop.set()

    # -- run bookkeeping ----------------------------------------------------------------------
    def _open_run(self, importer: Importer) -> tuple[int, Any]:
        source_uri = importer.source_uri
        with self.archive.catalog.writing() as con:
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0]
            con.execute(
                "INSERT INTO runs (run_id, command, source_uri, started_at, status, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                [run_id, self.command, source_uri, _utcnow(), os.getpid(), socket.gethostname()],
            )
            row = con.execute("SELECT cursor FROM cursors WHERE source_uri = ?", [source_uri]).fetchone()
        cursor = json.loads(row[0]) if row else None
        if isinstance(cursor, dict) and cursor.get("complete"):
            # Incremental sources (IMAP, POP3) go on after the last mail; the others are read
            # again from the start after a completed run, and dedup decides.
            cursor = cursor.get("last") if getattr(importer, "incremental", False) else None
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
        run_id, cursor = self._open_run(importer)
        self.resumed = cursor is not None  # False: this run reads the source from its start
        summary = RunSummary(run_id=run_id, source_uri=importer.source_uri)
        self._summary = summary
        self._importer = importer
        self._writer: PackWriter | None = None
        self._assign_id, self._assigned = os.urandom(16), 0
        self._chunk_pack_id = self._assign_id
        self._sealed_ids: set[bytes] = set()
        self._pending = _Pending()
        self._last_cursor = cursor  # the last cursor committed in this run (or the one it started from)
        self._executor: ProcessPoolExecutor | None = None
        self._stop_deadline: float | None = None
        with self.archive.catalog.reading() as con:
            self._known = KnownKeys.load(con)
        self.reporter.start("import", None, "mails")
        try:
            exhausted = self._drive(importer.scan(cursor, self.reporter))
            if exhausted:
                self._pending.cursor = {"complete": True, "last": self._pending.cursor if self._pending.has_cursor else self._last_cursor}
                self._pending.has_cursor = True
            self._commit()
            summary.status = "complete" if exhausted else "interrupted"
        except BaseException:
            self._kill_workers()  # a second signal, or an error: never wait for a worker that may be stuck
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
            if self._executor is not None:
                if self._stop.is_set():
                    self._kill_workers()
                else:
                    self._executor.shutdown(wait=True, cancel_futures=True)
            self.reporter.finish("import")
        summary.seconds = time.monotonic() - started
        self._close_run(summary)
        return summary

    def _drive(self, items: Iterator) -> bool:
        """Feed chunks through prepare (inline or in workers) in order; True when the source is exhausted.

        Each chunk is assigned to a pack when it is sent out (by the bytes sent
        so far), so workers seal its records for the pack they will land in;
        the driver seals the open pack when the next chunk belongs to another.
        """
        inflight: deque = deque()
        exhausted = False
        first = True
        while True:
            window = self.workers + 1 if self._executor is not None else 1
            while not exhausted and not self._stop.is_set() and len(inflight) < window:
                chunk = _take(items, self.chunk, min(CHUNK_BYTES, max(1, self.pack_target // 4)))
                if not chunk:
                    exhausted = True
                    break
                if not first and self._executor is None and self.workers > 0:
                    self._executor = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                        initargs=(dict(faults.ACTIVE),),
                    )
                    window = self.workers + 1
                first = False
                try:
                    inflight.append((chunk, *self._submit(chunk)))
                except Cancelled:  # stopped while preparing inline: the chunk is read again by the rerun
                    return False
            if not inflight:
                return exhausted
            chunk, fut, pack_id = inflight.popleft()
            prepared = self._result(fut)
            if prepared is None:  # stopped, and the workers did not come back in time
                self._kill_workers()
                return False
            if self._writer is not None and self._writer.pack_id != pack_id:
                self._commit()
            self._chunk_pack_id = pack_id
            self._apply(chunk, prepared)
            if self._writer is not None and self._writer.size >= 2 * self.pack_target:
                self._commit()  # far more new mail than the assignment expected: keep packs bounded
            elif self._writer is None and len(self._pending.sightings) >= 20_000:
                self._commit()  # a long run of duplicates: save the cursor now and then
            if self._stop.is_set() and not inflight:
                return False

    def _result(self, fut) -> list | None:
        """A chunk's prepared mails; None once a stop was requested and STOP_GRACE has passed without them."""
        if not isinstance(fut, Future):
            return fut
        while True:
            try:
                return fut.result(timeout=0.1)
            except FutureTimeout:
                pass
            if self._stop.is_set():
                if self._stop_deadline is None:
                    self._stop_deadline = time.monotonic() + STOP_GRACE
                elif time.monotonic() > self._stop_deadline:
                    return None

    def _kill_workers(self) -> None:
        """End the worker processes now (a stuck one never returns) and forget the pool."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        procs = list((getattr(executor, "_processes", None) or {}).values())
        for proc in procs:
            try:
                proc.kill()
            except (OSError, ValueError):
                pass
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.join(1.0)

    def _submit(self, chunk: list):
        """Send a chunk out (or prepare it inline); returns (result or future, pack id it is sealed for)."""
        pack_id = self._assign_id
        self._assigned += sum(it.length for it in chunk if isinstance(it, SourceMail))
        if self._assigned >= self.pack_target:
            self._assign_id, self._assigned = os.urandom(16), 0
        jobs = [it.raw if it.raw is not None else LocalFile(it.path, it.content_check)
                for it in chunk if isinstance(it, SourceMail) and (it.raw is not None or it.path is not None)]
        key = pack_key(self.archive.key, self.archive.uuid, pack_id)
        if self._executor is None:
            return prepare_chunk(jobs, key, self.archive.uuid, pack_id, self.parse_limit, self._stop.is_set), pack_id
        for job in jobs:  # the disk fetches the chunk's files while the workers finish the chunks before it
            if isinstance(job, LocalFile):
                will_read(job.path)
        return _submit_shielded(self._executor, _prepare_in_worker, jobs, key, self.archive.uuid, pack_id,
                                self.parse_limit), pack_id

    def _apply(self, chunk: list, prepared: list[Prepared]) -> None:
        pending, summary = self._pending, self._summary
        mails: list[tuple[SourceMail, Prepared]] = []
        it = iter(prepared)
        for item in chunk:
            if isinstance(item, SourceMail):
                faults.hit("after_source_read")
                if item.raw is not None or item.path is not None:
                    p = next(it)
                    if isinstance(p, ReadFailure):  # a local file that changed after the scan
                        exc = OSError(p.errno, p.message)
                        self._not_a_mail(item.on_read_error(exc) if item.on_read_error is not None
                                         else SourceProblem(item.ref, f"cannot read: {p.message}"))
                    elif isinstance(p, NotMail):  # its content_check found no mail: listed, never archived
                        self._not_a_mail(SourceSkip(item.ref, p.reason, item.cursor))
                    else:
                        mails.append((item, p))
                else:
                    try:
                        mails.append((item, prepare_streamed(item.opener, self.parse_limit)))
                    except OSError as exc:
                        self._problem(item.ref, f"cannot read: {exc.strerror or exc}", item.cursor)
            else:
                self._not_a_mail(item)
            if item.cursor is not None:
                pending.cursor, pending.has_cursor = item.cursor, True
        if not mails:
            return
        known_blobs, known_keys, known_mids = self._lookup(mails)
        decided = []
        for item, p in mails:
            summary.seen += 1
            summary.bytes += item.length
            dkey = p.meta.dedup_key.hex()
            if p.blob_id in pending.blob_index:
                decision, target = EXACT, ("new", pending.blob_index[p.blob_id])
            elif p.blob_id in known_blobs:
                decision, target = EXACT, ("old", known_blobs[p.blob_id])
            elif dkey in pending.dedup_index:
                decision, target = DUPLICATE, ("new", pending.dedup_index[dkey])
            elif dkey in known_keys:
                decision, target = DUPLICATE, ("old", known_keys[dkey])
            else:
                conflict = None
                if p.meta.message_id:
                    conflict = pending.mid_index.get(p.meta.message_id) or known_mids.get(p.meta.message_id)
                target = ("new", self._store_new(item, p, id_conflict=conflict is not None))
                decision = NEW
                if conflict is not None:
                    decision = ID_CONFLICT
                    kind, ref = conflict
                    if kind == "old":
                        pending.conflicts.add(ref)
                    else:
                        pending.messages[ref]["id_conflict"] = True
            decided.append((item, p, decision, target))
        self._load_old_evidence([t for _, p, _, t in decided if p.envelope is not None and t[0] == "old"])
        for item, p, decision, target in decided:
            if p.envelope is not None:
                added = sum(pending.add_recipient(target, kind, addr) for kind, addr in p.envelope.recipients)
                env_keys = pending.envelope_keys.setdefault(target, set())
                if p.envelope.sha256 not in env_keys:
                    env_keys.add(p.envelope.sha256)
                    pending.envelopes.append((target, p.envelope.text, p.envelope.sha256))
                if added and decision in (EXACT, DUPLICATE):
                    decision = JOURNAL_MERGE
            if decision in (EXACT, DUPLICATE):
                summary.duplicates += 1
            elif decision == JOURNAL_MERGE:
                summary.merged += 1
            else:
                summary.archived += 1
            summary.decisions[decision] = summary.decisions.get(decision, 0) + 1
            pending.sightings.append(
                {
                    "target": target,
                    "folder": item.folder,
                    "source_ref": item.ref,
                    "decision": decision,
                    "flags": " ".join(sorted(item.flags)) if item.flags else None,
                    "internal_date": _aware(item.internal_date),
                    "item_via": item.via,
                }
            )
        self.reporter.advance("import", len(mails), bytes=sum(i.length for i, _ in mails), archived=summary.archived)

    def _not_a_mail(self, item: SourceProblem | SourceSkip) -> None:
        if isinstance(item, SourceProblem):
            self._problem(item.ref, item.message, None)
        elif isinstance(item, SourceSkip):
            pending, summary = self._pending, self._summary
            pending.errors.append(("skipped", item.ref, item.reason))
            summary.skipped += 1
            summary.problems.append({"ref": item.ref, "kind": "skipped", "message": item.reason})

    def _problem(self, ref: str, message: str, cursor) -> None:
        self._pending.errors.append(("error", ref, message))
        self._summary.errors += 1
        self._summary.problems.append({"ref": ref, "kind": "error", "message": message})
        self.reporter.warn(f"{ref}: {message}")

    def _load_old_evidence(self, targets: list[tuple]) -> None:
        """Recipients and envelope hashes already stored for messages a journal report points at."""
        pending = self._pending
        ids = sorted({t[1] for t in targets if t not in pending.recipient_keys or t not in pending.envelope_keys})
        if not ids:
            return
        with self.archive.catalog.reading() as con:
            rec = con.execute(
                "SELECT msg_id, kind, address FROM recipients WHERE msg_id IN (SELECT unnest(?))", [ids]
            ).fetchall()
            env = con.execute("SELECT msg_id, sha256 FROM envelopes WHERE msg_id IN (SELECT unnest(?))", [ids]).fetchall()
        for msg_id in ids:
            pending.recipient_keys.setdefault(("old", msg_id), set())
            pending.envelope_keys.setdefault(("old", msg_id), set())
        for msg_id, kind, address in rec:
            pending.recipient_keys[("old", msg_id)].add((kind, address))
        for msg_id, sha in env:
            pending.envelope_keys[("old", msg_id)].add(sha)

    def _store_new(self, item: SourceMail, p: Prepared, id_conflict: bool) -> int:
        pending = self._pending
        if self._writer is None:
            storage = self.archive.storage(self.archive.active_medium_id())
            pack_id = self._chunk_pack_id if self._chunk_pack_id not in self._sealed_ids else os.urandom(16)
            self._writer = PackWriter(storage, self.archive.key, self.archive.uuid, pack_id=pack_id)
        data = p.data if p.data is not None else item.raw
        blob = bytes.fromhex(p.blob_id)
        if p.streamed:
            entry = self._writer.add_stream(blob, item.size, _chunks(item.opener))
        elif p.record is not None and p.sealed_for == self._writer.pack_id:
            entry = self._writer.add_sealed(blob, p.record, p.size, p.csize)
        else:  # sealed for a pack that filled up meanwhile, or not sealed: seal for this one
            if data is None:  # read by a worker: take the bytes back out of the record (checked against the blob id)
                data = open_record(pack_key(self.archive.key, self.archive.uuid, p.sealed_for), self.archive.uuid,
                                   blob, p.size, p.csize, p.record)
            entry = self._writer.add(blob, data)
        idx = len(pending.messages)
        meta = p.meta
        defects = [*meta.defects, *p.defects]
        pending.messages.append(
            {
                "blob_id": p.blob_id,
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
                "defects": ",".join(defects) if defects else None,
                "id_conflict": id_conflict,
            }
        )
        for kind, addrs in (("to", meta.to), ("cc", meta.cc), ("bcc", meta.bcc)):
            for a in addrs:
                pending.add_recipient(("new", idx), kind, a)
        pending.blob_index[p.blob_id] = idx
        pending.dedup_index[meta.dedup_key.hex()] = idx
        if meta.message_id:
            pending.mid_index.setdefault(meta.message_id, ("new", idx))
        return idx

    def _lookup(self, mails) -> tuple[dict[str, int], dict[str, int], dict[str, tuple[str, int]]]:
        """Which blob ids, dedup keys and Message-IDs of this chunk the catalog already holds.

        Keys this run committed are answered from memory; the catalog is asked
        only about keys it may have held before the run (or that were spilled).
        """
        known = self._known
        blobs = {p.blob_id: known.run_blobs[p.blob_id] for _, p in mails if p.blob_id in known.run_blobs}
        dkeys = {}
        mids = {}
        for _, p in mails:
            dkey = p.meta.dedup_key.hex()
            if dkey in known.run_keys:
                dkeys[dkey] = known.run_keys[dkey]
            mid = p.meta.message_id
            if mid is not None and mid in known.run_mids:
                mids[mid] = ("old", known.run_mids[mid])
        ask = [(i, p) for i, p in mails if known.may_hold(p.blob_id, p.meta.dedup_key.hex(), p.meta.message_id)]
        if not ask:
            return blobs, dkeys, mids
        keys = pa.table(
            {
                "blob_id": [p.blob_id for _, p in ask],
                "dedup_key": [p.meta.dedup_key.hex() for _, p in ask],
                "message_id": [p.meta.message_id for _, p in ask],
            }
        )
        with self.archive.catalog.reading() as con:
            con.register("chunk_keys", keys)
            old_blobs = con.execute(
                "SELECT m.blob_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT blob_id FROM chunk_keys) k USING (blob_id) GROUP BY 1"
            ).fetchall()
            old_keys = con.execute(
                "SELECT m.dedup_key, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT dedup_key FROM chunk_keys) k USING (dedup_key) GROUP BY 1"
            ).fetchall()
            old_mids = con.execute(
                "SELECT m.message_id, min(m.msg_id) FROM messages m JOIN (SELECT DISTINCT message_id FROM chunk_keys WHERE message_id IS NOT NULL) k USING (message_id) GROUP BY 1"
            ).fetchall()
            con.unregister("chunk_keys")
        # the catalog's answer is the lowest msg_id: it wins over the run's own (later) one
        blobs.update(old_blobs)
        dkeys.update(old_keys)
        mids.update({m: ("old", i) for m, i in old_mids})
        return blobs, dkeys, mids

    # -- commit ------------------------------------------------------------------------------------
    def _commit(self) -> None:
        pending, summary = self._pending, self._summary
        if pending.empty() and self._writer is None and not pending.envelopes:
            return
        info: PackInfo | None = None
        if self._writer is not None:
            info = self._writer.seal()
            self._sealed_ids.add(info.pack_id)
            self._writer = None
            summary.packs += 1
            faults.hit("after_pack_seal")
        medium_id = self.archive.active_medium_id()
        now = _utcnow()
        run_id = summary.run_id

        def msg_id_of(target: tuple, base: int) -> int:
            kind, ref = target
            return base + ref if kind == "new" else ref

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
                _insert(con, "messages", pa.table(cols, schema=MESSAGE_SCHEMA))
            if pending.recipients:
                _insert(con, "recipients", pa.table(
                    {
                        "msg_id": [msg_id_of(t, base) for t, _, _ in pending.recipients],
                        "kind": [k for _, k, _ in pending.recipients],
                        "address": [a for _, _, a in pending.recipients],
                    },
                    schema=RECIPIENT_SCHEMA,
                ))
            if pending.envelopes:
                env_base = con.execute("SELECT coalesce(max(envelope_id), 0) + 1 FROM envelopes").fetchone()[0]
                _insert(con, "envelopes", pa.table(
                    {
                        "envelope_id": [env_base + i for i in range(len(pending.envelopes))],
                        "msg_id": [msg_id_of(t, base) for t, _, _ in pending.envelopes],
                        "run_id": [run_id] * len(pending.envelopes),
                        "text": [text for _, text, _ in pending.envelopes],
                        "sha256": [sha for _, _, sha in pending.envelopes],
                        "learned_at": [now] * len(pending.envelopes),
                        "batch_id": pa.nulls(len(pending.envelopes), pa.int32()),
                    },
                    schema=ENVELOPE_SCHEMA,
                ))
            if pending.sightings:
                cols = {name: [] for name in SIGHTING_SCHEMA.names}
                for s in pending.sightings:
                    row = {
                        **s,
                        "msg_id": msg_id_of(s["target"], base),
                        "run_id": run_id,
                        "source_uri": self._importer.source_uri,
                        "via": s.get("item_via") or self._importer.via,
                        "seen_at": now,
                    }
                    for name in SIGHTING_SCHEMA.names:
                        cols[name].append(row[name])
                _insert(con, "sightings", pa.table(cols, schema=SIGHTING_SCHEMA))
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
                self._last_cursor = pending.cursor
            con.execute(
                "UPDATE runs SET seen = ?, archived = ?, duplicates = ?, merged = ?, errors = ?, bytes = ? WHERE run_id = ?",
                [summary.seen, summary.archived, summary.duplicates, summary.merged, summary.errors, summary.bytes, run_id],
            )
        faults.hit("after_db_commit")
        self._known.add(
            {m["blob_id"]: base + i for i, m in enumerate(pending.messages)},
            {m["dedup_key"]: base + i for i, m in enumerate(pending.messages)},
            {m["message_id"]: base + i for i, m in reversed(list(enumerate(pending.messages))) if m["message_id"]},
        )
        self._pending = _Pending()


def _insert(con, table: str, data: pa.Table) -> None:
    con.register("_rows", data)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def _chunks(opener) -> Iterator[bytes]:
    with opener() as f:
        while True:
            chunk = f.read(STREAM_CHUNK)
            if not chunk:
                return
            yield chunk


def _take(it: Iterator, n: int, max_bytes: int) -> list:
    out = []
    size = 0
    for item in it:
        out.append(item)
        size += item.length if isinstance(item, SourceMail) else 0
        if len(out) >= n or size >= max_bytes:
            break
    return out


def ingest(archive: Archive, importer: Importer, reporter: Reporter | None = None, **kw) -> RunSummary:
    return Ingest(archive, reporter, **kw).run(importer)
