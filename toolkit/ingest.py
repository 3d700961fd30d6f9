"""The ingest pipeline (docs/dedup.md): source → header scan → dedup → seal → pack → catalog commit.

Order of durability (docs/reliability.md R1): a pack is written under a temporary
name, flushed and renamed; only then are its catalog rows committed, in the
same transaction as the sightings and the source cursor. A crash before the
commit leaves at most an orphan pack (listed by verify, never counted); the
rerun reads again from the last committed cursor.

Stopping (SIGINT/SIGTERM through :meth:`Ingest.request_stop`): the chunks in
flight get ``STOP_GRACE`` seconds to come back; then the worker processes
are killed, the chunks still out are dropped (their mails were not
committed, so the rerun reads them again), the chunks decided whose packs
came back are committed in order (none after the first that did not) and
the run ends as interrupted. A chunk prepared inline is
cancelled by the watchdog's timer (see :mod:`toolkit.prepare`).

The run has three parts: this driver (reading, the worker pool, pack
assignment and pack writing), the pure dedup decider (:mod:`toolkit.dedup`,
docs/dedup.md) and the writer that commits the decided rows through the
catalog store (:mod:`toolkit.ingest_writer`, :mod:`toolkit.catalog.ingest_rows`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import itertools
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from typing import Callable, Iterator

from . import faults, marks
from .archive import Archive
from .catalog import ingest_rows as store
from .catalog.connection import IMPORT_MEMORY_LIMIT
from .executors import DaskExecutor, ExecutorSpec, StartedPool, kill_pool, open_executor, parse_executor
from .dedup import (ALSO_IN, CONVERTED_TWIN, DUPLICATE, EXACT, ID_CONFLICT, JOURNAL_MERGE, NEW, DedupDecider, Keys, Known,
                    Placement, conversion_of)
from .errors import NextStep, ObjectExistsError, PackNameTakenError
from .ingest_writer import MESSAGE_COLUMNS, IngestWriter, Part, PendingRows
from .errors import StorageError
from .known_keys import KnownKeys, mid_hash
from .pack import PACK_TARGET_SIZE, IndexEntry, PackInfo, PackReader, PackWriter, pack_name
from .own_files import keep_out
from .pack_tasks import ROW_SCHEMA, MediumAccess, PackResult, PackTask, SealAs, Sealing, build_pack
from .prepare import (DEFAULT_PARSE_LIMIT, STREAM_CHUNK, Cancelled, LocalFile, NotMail, Prepared, ReadFailure,
                      chunk_jobs, prepare_streamed, read_by_task as _read_by_task, task_job as _job)
from .remote_jobs import close_sessions
from .reporter import NullReporter, Reporter
from .space import check_import_space
from .source import Importer, RunSummary, SourceMail, SourceProblem, SourceSkip, will_read
from .worker_entry import pack_in_worker as _pack_in_worker, worker_init as _worker_init

__all__ = ["Ingest", "ingest", "KnownKeys", "NEW", "EXACT", "DUPLICATE", "ID_CONFLICT", "JOURNAL_MERGE"]

CHUNK = 4096                   # mails a task (one pack) holds at most
CHUNK_BYTES = 64 * 1024 * 1024  # bounds memory: (workers + 1) tasks in flight, each at most one pack of mail
FIRST_CHUNK, FIRST_CHUNK_BYTES = 256, 8 * 1024 * 1024  # the first chunk (inline) is at most this
#: A chunk of mail the source handed over as bytes is smaller: the driver holds it (and the pipe a pickled
#: copy) until its task is back, (workers + 1) chunks at once (docs/reliability.md K1, K3).
RAW_CHUNK_BYTES = 16 * 1024 * 1024
_NO_ROWS = ROW_SCHEMA.empty_table()
#: A chunk of remote jobs (IMAP UIDs the task fetches itself: toolkit/remote_jobs.py) is held by no one but its
#: worker; the first ones of a run are cut smaller than a pack, so that an account of 50 MB in a migration still
#: gives both workers a task (64 MiB: one task per such account, one worker busy), the later ones
#: (REMOTE_LATER_CHUNK_BYTES, a pack's CHUNK_BYTES) not: a catalog commit and a pack per task cost (16 MiB:
#: ~25 % more CPU for 5,000 mails than 32; 64 after the first: ~9 % less than 32; bench/RESULTS.md)
REMOTE_CHUNK_BYTES = 32 * 1024 * 1024
REMOTE_LATER_CHUNK_BYTES = CHUNK_BYTES
STOP_GRACE = 2.0               # seconds the chunks in flight get after a stop request
#: Tasks whose packs are written are committed together, in one transaction, once this many are or they hold
#: COMMIT_ROWS messages (or the oldest has waited COMMIT_HOLD seconds for the next): a transaction, its catalog
#: attach and its checkpoint cost about as much for one pack's rows as for several (bench/RESULTS.md "Commit
#: groups", "Commit groups of four"); a group due holds no more than both allow (the ready tasks after it: the next)
COMMIT_GROUP = 4
#: ... or once they hold this many messages: a group of tiny mails' tasks (4,096 each) stays a pair, and its
#: commit's memory that of two tasks' rows (docs/reliability.md K8)
COMMIT_ROWS = 8192
COMMIT_HOLD = 1.0
FAIL_GRACE = 10.0              # seconds the tasks still running get to end after an error


_UTC = dt.timezone.utc


def _aware(d: dt.datetime | None) -> dt.datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=_UTC)


#: the garbage collector's thresholds during a run: a chunk's mails, their prepared keys and rows are
#: thousands of objects that live until the chunk is committed, so at Python's default (700) the young
#: generations are collected every few mails and the whole heap every few chunks, for almost nothing
#: found (the run makes few reference cycles): about a tenth of the driver's CPU (bench/RESULTS.md
#: "Driver CPU"). Collections still run, only rarer.
RUN_GC_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds to :data:`RUN_GC_THRESHOLDS` for the run, and put them back."""
    before = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(RUN_GC_THRESHOLDS, before)))
    try:
        yield
    finally:
        gc.set_threshold(*before)


_SHIELDED = {signal.SIGINT, signal.SIGTERM}


def _submit_shielded(executor: Executor, *args) -> Future:
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


class SharedPool(ProcessPoolExecutor):
    """Local worker processes that several runs share (the sources of a migration: their interpreters,
    imports and IMAP logins are paid once, not per source). A run given one sends its tasks there and, when
    it stops or fails, cancels only its own; the owner shuts the pool down (:func:`kill_pool` after a stop)."""

    spec = ExecutorSpec()

    def __init__(self, workers: int):
        count = faults.shared_count(multiprocessing.get_context("spawn"))
        super().__init__(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                         initargs=(dict(faults.ACTIVE), count))
        self.worker_count = workers

    @property
    def broken(self) -> bool:
        """A worker died (the pool takes no more tasks): the owner starts another for the next run."""
        return bool(getattr(self, "_broken", False))




class Ingest:
    """One import run into an archive opened as writer: the driver.

    Reading the source happens in this process; each batch of items (at most
    one pack of mail) becomes a :class:`~toolkit.pack_tasks.PackTask` that
    reads local files, hashes, scans, unwraps journal reports, compresses,
    seals and writes one pack, on the executor once a source holds more than
    one batch (``workers=0`` keeps everything inline; ``executor`` chooses
    local processes or Dask, :mod:`toolkit.executors`). Each arrival is decided
    by the :class:`~toolkit.dedup.DedupDecider` and its rows are committed by
    the :class:`~toolkit.ingest_writer.IngestWriter` once per finished pack.
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
        pack_ids: Callable[[], bytes] | None = None,
        min_free: int | None = None,
        executor: ExecutorSpec | str | DaskExecutor | SharedPool | None = None,
        max_tasks: int | None = None,
        started: StartedPool | None = None,
    ):
        if archive.lock is None:
            raise RuntimeError("ingest needs an archive opened as writer")
        self.archive = archive
        self.reporter = reporter or NullReporter()
        self.command = command
        self.pack_target = pack_target or PACK_TARGET_SIZE  # small packs make crash tests meaningful
        self.chunk = chunk
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.parse_limit = parse_limit or DEFAULT_PARSE_LIMIT  # the per-mail watchdog (toolkit.prepare)
        #: where the ids of task packs come from: 16 random bytes each (a test may give its own to meet a taken name)
        self._new_pack_id = pack_ids or (lambda: os.urandom(16))
        self._own_pack_ids = pack_ids is not None  # (tests) then no task started ahead is taken up: it has its own
        self.min_free = min_free  # free bytes the active medium needs first (None: toolkit.space decides)
        # a DaskExecutor or SharedPool given here is shared (a migration's sources): this run uses it, never closes it
        self._given = executor if isinstance(executor, (DaskExecutor, SharedPool)) else None
        self.executor_spec = (executor.spec if self._given is not None else
                              executor if isinstance(executor, ExecutorSpec) else parse_executor(executor))
        self.on_executor = None  # tests: called with the executor once it is started
        #: at most this many tasks out at once (a migration bounds the connections of IMAP tasks on Dask so)
        self.max_tasks = max_tasks
        #: local workers spawned before the run (the command line's: docs/cli.md "import: workers from the start"),
        #: taken as this run's pool when they are the ones it would start (toolkit/executors.py StartedPool)
        self._started = started
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Finish the chunks in flight, commit them, and end the run as interrupted."""
        self._stop.set()

    # -- the run ---------------------------------------------------------------------------------
    def run(self, importer: Importer) -> RunSummary:
        # one DuckDB thread for the run's catalog sessions: they are small, and the workers want the cores
        catalog = self.archive.catalog
        threads, limit = catalog.threads, catalog.memory_limit
        catalog.use_threads(1)
        catalog.use_memory_limit(IMPORT_MEMORY_LIMIT)  # bounds the checkpoints that merge its commits (K8)
        try:
            with _fewer_collections():
                return self._run(importer)
        finally:
            catalog.use_threads(threads)
            catalog.use_memory_limit(limit)

    def _run(self, importer: Importer) -> RunSummary:
        check_import_space(self.archive, self.pack_target, self.min_free)  # E6: refused before anything is written
        keep_out(self.archive.home, self.archive.config, importer,  # N9: the archive's own files are never
                 f"import {importer.via or 'source'}")  # imported
        started = time.monotonic()
        self._rows = IngestWriter(self.archive.catalog, self.command, importer.source_uri, importer.via,
                                  getattr(importer, "owner", None))
        cursor = self._rows.open_run(getattr(importer, "incremental", False), os.getpid(), socket.gethostname())
        self.resumed = cursor is not None  # False: this run reads the source from its start
        summary = RunSummary(run_id=self._rows.run_id, source_uri=importer.source_uri)
        self._summary = summary
        self._decider = DedupDecider()
        self._parents: dict[str, tuple] = {}  # ref -> target of a mail whose embedded messages follow
        self._executor: Executor | None = None
        self._stop_deadline: float | None = None
        self._inflight: deque = deque()  # (chunk, future or result, own pack id): sent, not decided yet
        self._decided: deque[_Decided] = deque()  # decided, answered, not committed yet: in source order
        self._cur: _Decided | None = None  # the task whose mails are being decided
        self._message_appends: tuple | None = None  # (its message columns, their appends): see _store_new
        self._committing: list[_Decided] = []  # the tasks being committed
        self._two_phase: dict = {}   # future -> pack id of a task that asks before it writes
        self._asked: dict = {}       # pack id -> (slot, prepared, sizes): questions not yet taken up
        self._seal_on_answer: set = set()  # pack ids of tasks started ahead and taken up: answered with SealAs
        self._refused: dict = {}     # pack id -> future of a task started ahead not taken up: it keeps nothing
        self._questions, self._answers = None, []
        blobs, keys, mids, converted = store.known_at_start(self.archive.catalog, mid_hash)
        self._known = KnownKeys.from_sorted(blobs, keys, mids)
        # the msg_id the next decided new message will get at its commit (docs/dedup.md "Deciding ahead"), and the
        # keys of the decided tasks not committed yet (key -> that msg_id; a Message-ID: the first one's)
        self._next_msg_id = store.next_msg_id_now(self.archive.catalog)
        self._ahead_blobs: dict[str, int] = {}
        self._ahead_keys: dict[str, int] = {}
        self._ahead_mids: dict[str, int] = {}
        # converted mail in the catalog or decided in this run: only then are found keys split by conversion
        self._conversions = converted
        self._conversion_of: dict[str, tuple[str, str] | None] = {}  # via -> conversion_of(via), per run
        self._run_via = importer.via
        self.reporter.start("import", None, "mails")
        try:
            exhausted = self._drive(importer.scan(cursor, self.reporter))
            if exhausted:
                self._mark_complete()
            if not self._commit_all():  # stopped, and a pack did not come back in time: not committed
                exhausted = False
            summary.status = "complete" if exhausted else "interrupted"
        except BaseException as exc:
            self._fail(summary, started, settle=isinstance(exc, Exception))
            raise
        finally:
            if self._executor is not None:
                if self._stop.is_set() or self._given is not None:
                    self._kill_workers()
                else:
                    self._settle_refused()
                    self._executor.shutdown(wait=True, cancel_futures=True)
            self._drop_unapplied()
            close_sessions()
            self.reporter.finish("import")
        summary.seconds = time.monotonic() - started
        self._rows.close_run(summary.status)
        return summary

    def _fail(self, summary: RunSummary, started: float, settle: bool = False) -> None:
        """An error or a second signal: end the workers and the open pack, and record the run as failed.
        After an error (``settle``) the tasks still running get ``FAIL_GRACE`` seconds to end on their own
        first (a full medium fails them all within moments, and each removes its temp file); then, as
        after a second signal, the workers are killed."""
        if settle and self._executor is not None:
            futures = [f for _c, f, _p in self._out() if isinstance(f, Future)]
            for f in futures:
                f.cancel()
            for answers in self._answers:  # a task waiting for its decisions writes nothing and ends
                answers.put(set())
            wait_futures(futures, timeout=FAIL_GRACE)
        self._kill_workers()  # never wait for a worker that may be stuck
        for t in (*self._decided, self._cur, *self._committing):
            if t is not None and t.writer is not None:
                t.writer.abort()
                t.writer = None
        summary.status = "failed"
        summary.seconds = time.monotonic() - started
        try:
            self._rows.close_run(summary.status)
        except Exception:  # the original error matters more
            pass

    def _drive(self, items: Iterator) -> bool:
        """Feed chunks through their pack tasks (inline or on the executor) in order; True when the source is
        exhausted. Each chunk is one task and at most one pack; its rows are committed once it is back.

        Deciding ahead (docs/architecture.md, docs/dedup.md): a task's mails are decided as soon as its question
        (two phases) or its result (one phase) is in, once the task before it is decided, not once that one is
        committed; each task is committed when its pack is written, strictly in source order, one transaction
        per pack (:meth:`_commit_ready`). The tasks decided and not committed yet count in the window of tasks
        out at once. While a test kill point is set the window is one task (:meth:`_window`): each task is then
        decided and committed before the next one is sent, the strictly serial order, so that the nth passage
        of a kill point is the same passage in every run (toolkit/faults.py)."""
        inflight: deque = self._inflight
        decided = self._decided
        self._exhausted = False
        self._pool = self.workers > 0 or self.executor_spec.distributed
        # the first chunk runs inline (no pool is started for a small source): kept small, so a large source is
        # not read serially meanwhile; with a pool shared by several runs (a migration's), already running, none is
        self._first = self._pool and self._given is None
        self._chunks = _Chunks(items)
        self._taken = 0  # chunks taken so far
        while True:
            try:
                self._fill()
            except Cancelled:  # stopped while preparing inline: the chunks are read again by the rerun
                return False
            if not inflight:
                if self._exhausted or self._stop.is_set() or not decided:
                    return self._exhausted  # the tasks decided last are committed with the run's end
                if not self._commit_next():  # the window is full of decided tasks: the oldest one's pack first
                    return False
                continue
            chunk, fut, pack_id = inflight[0]
            if self._conversions and decided:
                # converted mail is told apart by asking the catalog (split_by_conversion), which must then hold
                # every task decided before: those are committed first (the serial order)
                if not self._commit_next():
                    return False
                continue
            task_pack = self._two_phase.get(fut)
            try:
                if task_pack is not None:
                    question = self._await_question(task_pack, fut)
                    if question is None:  # stopped: the workers did not come back
                        return self._give_up()
                    inflight.popleft()
                    del self._two_phase[fut]
                    self._decide_two_phase(chunk, fut, pack_id, task_pack, question)
                else:
                    prepared = self._result(fut, meanwhile=self._meanwhile)
                    if prepared is None:  # stopped, and the workers did not come back in time
                        return self._give_up()
                    inflight.popleft()
                    t = self._begin(chunk, fut, pack_id)
                    t.result, t.entries = prepared, _entries(prepared)
                    self._apply(chunk, prepared.prepared)
                    self._end(t)
            except Exception:
                self._commit_before_failing()
                raise
            if self._stop.is_set() and not inflight:
                return False

    def _fill(self) -> None:
        """Send chunks out while the window has room (:meth:`_window`). A decided task whose pack is written frees
        its place: it is committed once the next chunk is taken (the source's last task is committed with the
        cursor that says the source is exhausted). Called again while the driver waits for a task (a commit
        meanwhile makes room for the next chunk at once, so that the workers never run out of tasks)."""
        inflight, decided = self._inflight, self._decided
        if self._first and self._started is not None and getattr(self._started, "ahead", None):
            self._first = False  # their workers run the first chunks: none is prepared inline
            self._take_up_ahead()
        window = self._window()
        while (not self._exhausted and not self._stop.is_set()
               and len(inflight) + len(decided) - self._ready_count() < window):
            first = self._first
            size = min(CHUNK_BYTES, max(1, self.pack_target))
            # the first chunks of remote jobs are small enough for every worker to get one
            remote = REMOTE_CHUNK_BYTES if self._taken <= max(2, self.workers) else REMOTE_LATER_CHUNK_BYTES
            # the source's last two chunks are cut even (the workers end together) once tasks run on a pool
            chunk = self._chunks.take(min(self.chunk, FIRST_CHUNK) if first else self.chunk,
                                      min(size, FIRST_CHUNK_BYTES) if first else size, remote,
                                      balance=self._executor is not None and not faults.ACTIVE["kill"])
            self._taken += 1
            if not chunk:
                self._exhausted = True
                return
            if first and not faults.ACTIVE["kill"] and not any(map(_remote, chunk)):
                self._first = False
                self._exhausted = self._start_with_inline(chunk, self._chunks, size)
                self._taken = len(inflight)
                continue
            # the decided tasks whose packs are written, in order, when due: after the chunk is sent when tasks
            # run on a pool (a worker that ended its task gets the next one without waiting for a commit), before
            # it when they run one at a time (the serial order: each task committed before the next is sent)
            serial = window == 1
            if serial:
                self._commit_ready()
            if not first and self._executor is None and self._pool:
                self._start_executor()
                window = self._window()
            self._first = False
            inflight.append((chunk, *self._submit(chunk)))
            if not serial:
                self._commit_ready()

    def _take_up_ahead(self) -> None:
        """The tasks the start-up sent ahead (toolkit/early_tasks.py), in order, each taken up while it spans this
        run's own next chunk with the same jobs, cut with this run's limits and parse limit; the first that does
        not, and every one after it, keep nothing when they ask (:meth:`_await_question`, :meth:`_settle_refused`)
        and write nothing. A chunk taken for one not taken up is sent as a task of its own."""
        ahead, self._started.ahead = self._started.ahead, []
        theirs = self._started.executor
        self._start_executor()
        if self._executor is None or self._executor is not theirs:
            return  # another pool than theirs (another worker count): they ended with theirs
        usable = (self._questions is not None and not self._own_pack_ids and not faults.ACTIVE["kill"]
                  and getattr(self._executor, "_broken", False) is False)
        limit = min(CHUNK_BYTES, max(1, self.pack_target))
        taken = 0
        for a in ahead:
            if not usable or a.parse_limit != self.parse_limit or a.n > self.chunk or a.max_bytes > limit:
                break
            chunk = self._chunks.take_exact(a.count)
            self._taken += 1
            if chunk_jobs(chunk) != a.jobs:
                if chunk:
                    self._inflight.append((chunk, *self._submit(chunk)))
                if len(chunk) < a.count:
                    self._exhausted = True
                break
            self._inflight.append((chunk, a.future, os.urandom(16)))
            self._two_phase[a.future] = a.pack_id
            self._seal_on_answer.add(a.pack_id)
            taken += 1
        for a in ahead[taken:]:
            self._refused[a.pack_id] = a.future

    def _settle_refused(self) -> None:
        """Answer the tasks started ahead and not taken up that have not asked yet (each keeps nothing, writes
        nothing), so that the pool can end: their workers wait for the answer."""
        while self._refused and self._questions is not None:
            for pack_id, fut in list(self._refused.items()):
                if fut.done():  # (it failed: nothing to answer)
                    del self._refused[pack_id]
            if self._refused:
                self._take_question(True, 0.1)

    def _take_question(self, block: bool, timeout: float | None) -> bool:
        """One question of the workers, if one comes (else False): a task started ahead and not taken up is answered
        at once with nothing kept; any other question waits in ``_asked`` for its task's turn."""
        try:
            asked, slot, prepared, sizes = self._questions.get(block, timeout)
        except queue.Empty:
            return False
        if self._refused.pop(asked, None) is not None:
            self._answers[slot].put(set())
        else:
            self._asked[asked] = (slot, prepared, sizes)
        return True

    def _meanwhile(self) -> None:
        """While the driver waits for a task: send the next chunks into the room a written pack makes, then
        commit the decided tasks whose packs are written (when due): a worker that ended its task does not
        wait for a commit to get its next one."""
        self._fill()
        self._commit_ready()

    # -- the tasks decided ahead -----------------------------------------------------------------------
    def _begin(self, chunk: list, fut, own_pack_id: bytes) -> "_Decided":
        """Start deciding a task's mails: its rows, its counts before (a stop may forget them again)."""
        t = self._cur = _Decided(chunk, fut, own_pack_id, self._next_msg_id, dataclasses.replace(self._summary))
        return t

    def _end(self, t: "_Decided") -> None:
        """A task is decided: its new messages are numbered as its commit will number them (from the msg_id after
        those of the tasks decided before), their keys answer the next tasks' lookups until it is committed, and
        the decider starts afresh, as after a commit (docs/dedup.md "Deciding ahead")."""
        m = t.rows.messages
        n = len(m)
        if n:
            ids = range(t.base, t.base + n)
            blobs, keys = dict(zip(m["blob_id"], ids)), dict(zip(m["dedup_key"], ids))
            mids = dict(zip(reversed(m["message_id"]), reversed(ids)))  # the first message with an id wins
            mids.pop(None, None)
            mids.pop("", None)
            t.keys = (blobs, keys, mids)
            self._ahead_blobs.update(blobs)
            self._ahead_keys.update(keys)
            ahead_mids = self._ahead_mids
            for mid, msg_id in mids.items():
                ahead_mids.setdefault(mid, msg_id)
            self._next_msg_id += n
        base = t.base
        self._parents = {ref: ("old", base + x[1]) if x[0] == "new" else x for ref, x in self._parents.items()}
        self._decider.reset()
        t.counts_after = dataclasses.replace(self._summary)
        # its mails (a source's bytes, POP3 or mbox) and prepared keys are not needed any more: freed now, not
        # held until the commit
        t.chunk = []
        if t.result is not None:
            t.result.prepared = []
        self._cur = None
        self._message_appends = None
        self._decided.append(t)

    def _forget_ahead(self, t: "_Decided") -> None:
        """Drop a committed (or forgotten) task's keys from those of the tasks decided ahead."""
        blobs, keys, mids = t.keys
        for table, own in ((self._ahead_blobs, blobs), (self._ahead_keys, keys)):
            for key, msg_id in own.items():
                if table.get(key) == msg_id:
                    del table[key]
        ahead_mids = self._ahead_mids
        for mid, msg_id in mids.items():
            if ahead_mids.get(mid) == msg_id:
                del ahead_mids[mid]
                for later in self._decided:  # the first later task's message with this id takes its place
                    other = later.keys[2].get(mid)
                    if other is not None and later is not t:
                        ahead_mids[mid] = other
                        break

    def _ready(self) -> bool:
        """Is the oldest decided task's pack written (or had it none to wait for)?"""
        if not self._decided:
            return False
        fut = self._decided[0].fut
        return not isinstance(fut, Future) or fut.done()

    def _ready_count(self) -> int:
        """How many decided tasks, oldest first, have their packs written (or had none to wait for): those that
        may be committed now, together. A task that failed ends the count (the oldest one counts: its error is
        raised when it is committed)."""
        if not self._ready():
            return 0
        n, now = 0, None
        for t in self._decided:
            fut = t.fut
            if isinstance(fut, Future) and not fut.done():
                return n
            if t.ready_at is None:
                t.ready_at = now = now or time.monotonic()
            if _failed(fut):
                return n or 1
            n += 1
        return n

    def _due(self) -> int:
        """How many decided tasks to commit now: those whose packs are written once they are COMMIT_GROUP or hold
        COMMIT_ROWS messages, or the oldest has waited COMMIT_HOLD seconds, or no later task is out to join them;
        each as soon as its pack is written while tasks run one at a time (:meth:`_window`), the run is
        stopping, or it failed; else 0."""
        n = self._ready_count()
        if not n or n >= COMMIT_GROUP or self._window() == 1 or self._stop.is_set():
            return n
        if sum(len(t.rows.messages) for t in itertools.islice(self._decided, n)) >= COMMIT_ROWS:
            return n
        oldest = self._decided[0]
        if len(self._decided) == n and not self._inflight or _failed(oldest.fut):
            return n  # nothing later is out to join it, or its error is raised now
        return n if time.monotonic() - oldest.ready_at >= COMMIT_HOLD else 0

    def _commit_ready(self) -> bool:
        """Commit the decided tasks, oldest first, whose packs are written, when due (:meth:`_due`), in one
        transaction; True when some were."""
        n = self._due()
        if n:
            self._commit_next(n, full=True)
        return bool(n)

    def _commit_next(self, n: int = 1, full: bool = False) -> bool:
        """Wait for the oldest decided task's pack and commit it, with the next ones whose packs are written too
        (the ``n`` that :meth:`_due` counted, and any more ready since; with ``full``, a group of those, no more
        than COMMIT_GROUP tasks and none after it holds COMMIT_ROWS messages), in one transaction; False when stopped
        and it did not come back within STOP_GRACE (then the decided tasks are forgotten and the workers killed:
        :meth:`_give_up`)."""
        group: list[_Decided] = []
        rows = 0
        for t in self._decided:
            fut = t.fut
            if group and (_failed(fut) or isinstance(fut, Future) and not fut.done()):
                break  # not written (yet), or failed: committed on its own, after these
            if full and group and (len(group) >= COMMIT_GROUP or rows >= COMMIT_ROWS):
                break  # the group is full: the ready tasks after it are the next group
            rows += len(t.rows.messages)
            if t.two_phase is not None:
                result = self._result(fut)  # the oldest's may be waited for; the others' are back
                if result is None:
                    return self._give_up()
                t.result, t.entries = result, _entries(result)
                if result.pack is not None:  # the offsets as written
                    _point_rows(t.rows.messages, t.two_phase.hex(), t.two_phase.hex(), t.entries)
                t.two_phase = None
            group.append(t)
        assert full or len(group) >= min(n, len(self._decided))
        for _ in group:
            self._decided.popleft()
        self._commit(group)
        return True

    def _commit_all(self) -> bool:
        """Commit every decided task in order (the run's end); False when stopped and a pack did not come back.

        When the source is exhausted and every task is decided, the packs still being written are waited for
        first, so that the tasks left are committed in one transaction, not one group now and the last task's
        alone after it; and the worker processes, which have nothing left to do, are told to end, so that they
        exit beside that commit instead of after it (docs/architecture.md "The import's tail")."""
        if self._exhausted and not self._inflight and self._executor is not None:
            pending = [t.fut for t in self._decided if isinstance(t.fut, Future)]
            while pending and not self._stop.is_set():
                _done, waiting = wait_futures(pending, timeout=0.1)
                if not waiting or any(_failed(f) for f in _done):
                    break
                pending = list(waiting)
            if (isinstance(self._executor, ProcessPoolExecutor) and self._given is None and not self._stop.is_set()
                    and all(isinstance(t.fut, Future) and t.fut.done() and not _failed(t.fut) for t in self._decided
                            if t.fut is not None)):
                self._executor.shutdown(wait=False)  # each worker is idle: it reads its end and exits
        while self._decided:
            if not self._commit_next():
                return False
        return True

    def _give_up(self) -> bool:
        """Stopped, and a task did not come back within STOP_GRACE: the decided tasks whose packs are written are
        committed, the others forgotten (nothing of their mails is committed: the rerun reads them again), and
        the workers are killed. Returns False (the run is interrupted)."""
        while self._ready():
            t = self._decided[0]
            if t.two_phase is not None and (t.fut.cancelled() or t.fut.exception() is not None):
                break
            self._commit_next()
        self._discard_decided()
        self._kill_workers()
        return False

    def _commit_before_failing(self) -> None:
        """A task failed (or its worker died): the tasks decided before it are committed first, as far as their
        packs come back within FAIL_GRACE (the serial order had committed them before it was awaited); an error
        meanwhile is dropped, the first one matters more."""
        deadline = time.monotonic() + FAIL_GRACE
        try:
            while self._decided:
                fut = self._decided[0].fut
                if isinstance(fut, Future):
                    wait_futures([fut], timeout=max(0.0, deadline - time.monotonic()))
                    if not fut.done() or fut.cancelled() or fut.exception() is not None:
                        return
                if not self._commit_next():
                    return
        except Exception:
            return

    def _discard_decided(self) -> None:
        """Forget the decided tasks not committed (stopped while their packs were written): their rows, their
        cursors (the rerun reads their chunks again), the driver's open packs and the counts they added. They go
        back to the tasks out (:meth:`_drop_unapplied` removes a pack that was written meanwhile)."""
        decided = self._decided
        if not decided:
            return
        packs = self._summary.packs
        self._summary.__dict__.update(decided[0].counts_before.__dict__)
        self._summary.packs = packs
        self._next_msg_id = decided[0].base
        for t in reversed(decided):
            if t.writer is not None:
                t.writer.abort()
                t.writer = None
            if t.fut is not None:
                self._inflight.appendleft((t.chunk, t.fut, t.own_pack_id))
        self._ahead_blobs, self._ahead_keys, self._ahead_mids = {}, {}, {}
        decided.clear()
        self._decider.reset()

    def _out(self) -> list:
        """(chunk, future or result, own pack id) of every task sent and not committed: decided or not."""
        return [*((t.chunk, t.fut, t.own_pack_id) for t in self._decided if t.fut is not None), *self._inflight]

    def _mark_complete(self) -> None:
        """The source is exhausted: the last task's commit saves a cursor that says so (with no task left, a
        commit of its own)."""
        decided = self._decided
        if not decided:
            t = _Decided([], None, b"", self._next_msg_id, dataclasses.replace(self._summary))
            t.counts_after = dataclasses.replace(self._summary)
            decided.append(t)
        rows = decided[-1].rows
        last = self._rows.last_cursor  # the cursor the tasks before will have committed
        for t in decided:
            if t.rows.has_cursor:
                last = t.rows.cursor
        rows.set_cursor({"complete": True, "last": last})

    def _start_with_inline(self, first: list, chunks: "_Chunks", size: int) -> bool:
        """The run's first chunk: when the source holds more, the worker processes are started and the next
        chunks sent to them *before* the first one is prepared inline, so that their start (an interpreter
        and its imports each) runs beside the driver's inline work instead of after it (bench/RESULTS.md
        "Pipeline overlap"); a source of one chunk still starts no pool. Returns True when the source is
        exhausted. The chunks stay in the source's order in ``_inflight``: the inline one first."""
        inflight = self._inflight
        later: list = []
        exhausted = False
        nxt = chunks.take(self.chunk, size, REMOTE_CHUNK_BYTES, balance=True)
        if nxt:
            self._start_executor()
            try:
                later.append((nxt, *self._submit(nxt)))
                while len(later) + 1 < self._window() and not self._stop.is_set():
                    nxt = chunks.take(self.chunk, size, REMOTE_CHUNK_BYTES, balance=True)
                    if not nxt:
                        exhausted = True
                        break
                    later.append((nxt, *self._submit(nxt)))
                done = self._submit(first, inline=True)
            finally:
                inflight.extend(later)  # a stop meanwhile: the run's end kills or drops them (their rows are not applied)
            close_sessions()  # a connection the inline chunk opened does not stay open beside the workers' own
            inflight.insert(len(inflight) - len(later), (first, *done))
        else:
            exhausted = True
            inflight.append((first, *self._submit(first)))
        return exhausted

    def _window(self) -> int:
        """How many tasks may be out at once: one more than there are workers to run them (one while a test
        kill point is set: its nth passage is then the same in every run, toolkit/faults.py)."""
        if self._executor is None or faults.ACTIVE["kill"]:
            return 1
        if isinstance(self._executor, (DaskExecutor, SharedPool)):
            window = self._executor.worker_count + 1
        else:
            window = self.workers + 1
        return window if self.max_tasks is None else max(1, min(window, self.max_tasks))

    def _start_executor(self) -> None:
        close_sessions()  # a connection the inline chunk opened does not stay open beside the workers' own
        if self._given is not None:
            self._executor = self._given
            return
        taken = None
        if self._started is not None and not self.executor_spec.distributed:
            taken = self._started.take(self.workers, dict(faults.ACTIVE))
        if taken is not None:  # the same pool as below, its workers started already
            self._executor, self._questions, self._answers = taken
            if self.on_executor is not None:
                self.on_executor(self._executor)
            return
        channel = None
        if not self.executor_spec.distributed:  # local workers ask before they write (two phases: pack_tasks)
            ctx = multiprocessing.get_context("spawn")
            self._questions, self._answers = ctx.Queue(), [ctx.Queue() for _ in range(max(1, self.workers))]
            channel = (self._questions, self._answers, ctx.Value("i", 0))
        count = None if self.executor_spec.distributed else faults.shared_count(multiprocessing.get_context("spawn"))
        self._executor = open_executor(self.executor_spec, self.workers, _worker_init, (dict(faults.ACTIVE), count, channel))
        if self.on_executor is not None:
            self.on_executor(self._executor)

    def _result(self, fut, meanwhile: Callable[[], object] | None = None) -> PackResult | None:
        """A chunk's pack task result; None once a stop was requested and STOP_GRACE has passed without them.
        ``meanwhile`` is called while it is waited for (commit the decided tasks whose packs are written)."""
        if not isinstance(fut, Future):
            return fut
        while True:
            try:
                return fut.result(timeout=0.1)
            except FutureTimeout:
                if meanwhile is not None:
                    meanwhile()
            except ObjectExistsError as exc:  # the task's pack met a name it did not write (B5, C9)
                raise self._name_taken(getattr(exc, "pack_name", "?"), getattr(exc, "mails", 0)) from None
            if self._stop_waiting():
                return None

    def _stop_waiting(self) -> bool:
        """True once a stop was requested and STOP_GRACE has passed since the first wait after it."""
        if not self._stop.is_set():
            return False
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + STOP_GRACE
            return False
        return time.monotonic() > self._stop_deadline

    def _await_question(self, pack_id: bytes, fut: Future) -> tuple | None:
        """The two-phase question of the task writing pack ``pack_id``: (slot, prepared, sizes); questions
        of later tasks that come first are kept. None once a stop was requested and STOP_GRACE has passed.
        Meanwhile the decided tasks whose packs are written are committed (a question waiting is taken first)."""
        while True:
            if pack_id in self._asked:
                return self._asked.pop(pack_id)
            due = self._due()
            if self._take_question(not due, None if due else 0.05):
                continue
            self._meanwhile()
            if due:
                continue
            if fut.done():  # it ended without asking: its error (a task asks before it can end otherwise)
                self._result(fut)
                raise AssertionError(f"pack task {pack_id.hex()} ended without asking which records to write")
            if self._stop_waiting():
                return None

    def _decide_two_phase(self, chunk: list, fut: Future, own_pack_id: bytes, task_pack: bytes, question: tuple
                          ) -> None:
        """Decide a two-phase task's mails before its pack is written and answer which records it keeps; its
        pack (the offsets as written) is taken when it comes back (:meth:`_commit_next`)."""
        slot, prepared, sizes = question
        t = self._begin(chunk, fut, own_pack_id)
        t.two_phase = task_pack
        t.result = PackResult(prepared, PackInfo(task_pack, pack_name(task_pack), 0, 0, b"", []), _NO_ROWS)
        # (offset, length, size, csize) of each record asked about; where it lies and its length once its pack is
        # written (the task asks before it compresses): :meth:`_commit_next` points the rows at the records as written
        t.entries = {b: (0, 0, size, 0) for b, size in sizes.items()}
        self._apply(chunk, prepared)
        keep = set(t.refs)
        if task_pack in self._seal_on_answer:  # started ahead: it has no key and no medium yet (toolkit/early_tasks.py)
            self._seal_on_answer.discard(task_pack)
            medium_id = self.archive.active_medium_id()
            keep = SealAs(keep, Sealing(self.archive.key, self.archive.uuid),
                          MediumAccess(medium_id, *self.archive.medium_access(medium_id)))
        self._answers[slot].put(keep)
        self._end(t)

    def _kill_workers(self) -> None:
        """End the worker processes now (a stuck one never returns) and forget the pool."""
        executor, self._executor = self._executor, None
        for q in (self._questions, *self._answers):  # nobody reads them any more: never wait at exit to flush
            if q is not None:
                q.cancel_join_thread()
        if executor is None:
            return
        if executor is self._given:  # shared with other runs: drop only this run's tasks
            for _chunk, fut, _pack_id in self._out():
                if isinstance(fut, Future):
                    fut.cancel()
            return
        if isinstance(executor, DaskExecutor):  # its workers are not ours to kill; drop our tasks
            executor.shutdown(wait=False, cancel_futures=True)
            return
        kill_pool(executor)

    def _drop_unapplied(self) -> None:
        """Remove the packs of tasks that finished but were never applied (a stopped or failed run): no
        catalog row will reference them. A task still running when its worker was killed leaves at most
        its temp file, which every reader ignores."""
        inflight = self._out()
        self._inflight, self._decided = deque(), deque()
        storage = None
        for _chunk, fut, _pack_id in inflight:
            if not isinstance(fut, Future) or not fut.done() or fut.cancelled() or fut.exception() is not None:
                continue
            pack = fut.result().pack
            if pack is not None:
                try:
                    storage = storage or self.archive.storage(self.archive.active_medium_id())
                except Exception:  # the run's own error matters more; the pack stays an orphan
                    return
                _drop_unreferenced(storage, pack)

    def _submit(self, chunk: list, inline: bool = False):
        """Send a chunk out as one pack task (or run it inline: no executor, or ``inline``); returns (result or
        future, the pack id the driver's own pack takes if a streamed mail needs one)."""
        jobs = chunk_jobs(chunk)
        medium_id = self.archive.active_medium_id()
        task = PackTask(jobs, MediumAccess(medium_id, *self.archive.medium_access(medium_id)),
                        Sealing(self.archive.key, self.archive.uuid), self.parse_limit, pack_id=self._new_pack_id())
        if self._executor is None or inline:
            try:
                return build_pack(task, self._stop.is_set, self.archive.storage(medium_id)), os.urandom(16)
            except ObjectExistsError as exc:
                raise self._name_taken(getattr(exc, "pack_name", pack_name(task.pack_id)), getattr(exc, "mails", 0)) from None
        if not self.executor_spec.distributed:
            # the disk fetches the chunk's files while the workers finish the chunks before it (not cached yet)
            will_read(*[job.path for job in jobs if isinstance(job, LocalFile)])
        slow = faults.ACTIVE["slow"] if self.executor_spec.distributed else None  # never a kill point: not ours
        task.two_phase = self._questions is not None and self._executor is not self._given
        fut = _submit_shielded(self._executor, _pack_in_worker, task, slow)
        if task.two_phase:
            self._two_phase[fut] = task.pack_id
        return fut, os.urandom(16)

    def _apply(self, chunk: list, prepared: list[Prepared]) -> None:
        """Decide and record every item of a chunk, in order (prepared: one result per mail read locally)."""
        mails = self._arrivals(chunk, prepared)
        if not mails:
            return
        dkeys = [p.meta.dedup_key.hex() for _, p in mails]  # each mail's dedup key as hex, made once
        known = self._lookup(mails, dkeys)
        place = self._place
        placed = [(item, p, place(item, p, dkey, known)) for (item, p), dkey in zip(mails, dkeys)]
        self._settle(placed)
        self.reporter.advance("import", len(mails), bytes=sum(i.length for i, _ in mails),
                              archived=self._summary.archived)

    def _arrivals(self, chunk: list, prepared: list[Prepared]) -> list[tuple[SourceMail, Prepared]]:
        """The chunk's mails with their prepared keys; what is not a mail is recorded as a problem or a skip."""
        mails: list[tuple[SourceMail, Prepared]] = []
        it = iter(prepared)
        for item in chunk:
            if isinstance(item, SourceMail):
                faults.hit("after_source_read")
                if _read_by_task(item):
                    p = next(it)
                    if isinstance(p, ReadFailure):  # a local file that changed after the scan
                        exc = OSError(p.errno, p.message)
                        self._not_a_mail(item.on_read_error(exc) if item.on_read_error is not None
                                         else SourceProblem(item.ref, f"cannot read: {p.message}"))
                    elif isinstance(p, NotMail):  # its content_check found no mail: listed, never archived
                        self._not_a_mail(SourceProblem(item.ref, p.reason, item.cursor) if p.error
                                         else SourceSkip(item.ref, p.reason, item.cursor))
                    else:
                        if p.source_note is not None:  # a From_ line the worker removed (importers/eml.py)
                            item = dataclasses.replace(item, size=item.size - p.source_note.removed,
                                                       **p.source_note.note)
                        mails.append((item, p))
                else:
                    try:
                        mails.append((item, prepare_streamed(item.opener, self.parse_limit)))
                    except OSError as exc:
                        self._problem(item.ref, f"cannot read: {exc.strerror or exc}")
            else:
                self._not_a_mail(item)
            if item.cursor is not None:
                self._cur.rows.set_cursor(item.cursor)
        return mails

    def _place(self, item: SourceMail, p: Prepared, dkey: str, known: Known) -> Placement:
        """The decider's placement of one mail (``dkey``: its dedup key as hex); a new one is stored in the
        open pack at once."""
        summary = self._summary
        summary.seen += 1
        summary.bytes += item.length
        via = item.via or self._run_via
        conversion = self._conversion_of.get(via, False)
        if conversion is False:
            conversion = self._conversion_of[via] = conversion_of(via)
        placement = self._decider.place(Keys(p.blob_id, dkey, p.meta.message_id, conversion is not None), known)
        if placement.decision in (NEW, ID_CONFLICT, CONVERTED_TWIN):
            self._store_new(item, p, dkey, placement)
            if conversion is not None:
                self._conversions = True
                self._cur.rows.conversions.append((placement.target, *conversion))
        if placement.twin_of is not None:  # a link from the converted mail to the original MIME
            pair = (placement.target, placement.twin_of) if conversion else (placement.twin_of, placement.target)
            self._cur.rows.links.append((*pair, CONVERTED_TWIN, item.ref))
        return placement

    def _settle(self, placed: list[tuple[SourceMail, Prepared, Placement]]) -> None:
        """Journal envelopes (they may turn a duplicate into a journal-merge), then one sighting per mail."""
        decider, rows = self._decider, self._cur.rows
        wanted = decider.evidence_wanted([pl.target for _, p, pl in placed if p.envelope is not None])
        if wanted:  # recipients and envelope hashes already stored for messages a journal report points at
            recipients, envelopes = store.stored_evidence(self.archive.catalog, wanted)
            if self._decided:  # and those the tasks decided before will store with their commits
                more_recipients, more_envelopes = self._ahead_evidence(wanted)
                recipients, envelopes = [*recipients, *more_recipients], [*envelopes, *more_envelopes]
            decider.take_evidence(wanted, recipients, envelopes)
        sight = rows.sightings.lists
        sight_target, sight_folder, sight_ref, sight_decision = (sight["target"], sight["folder"],
                                                                 sight["source_ref"], sight["decision"])
        sight_flags, sight_date, sight_via = sight["flags"], sight["internal_date"], sight["item_via"]
        for item, p, placement in placed:
            decision, target = placement.decision, placement.target
            if p.envelope is not None:
                decision, added, new_envelope = decider.settle(placement, p.envelope.recipients, p.envelope.sha256)
                rows.recipients.extend((target, kind, address) for kind, address in added)
                if new_envelope:
                    rows.envelopes.append((target, p.envelope.text, p.envelope.sha256))
            self._count(decision)
            if item.embedded:
                self._parents[item.ref] = target
            if item.parent_ref is not None and item.parent_ref in self._parents:
                rows.links.append((target, self._parents[item.parent_ref], "embedded", item.ref))
            if item.warning:
                self.reporter.warn(f"{item.ref}: {item.warning}")
            # a row of SIGHTING_COLUMNS, appended column by column (Columns.add's order, without its checks)
            sight_target.append(target)
            sight_folder.append(item.folder)
            sight_ref.append(item.ref)
            sight_decision.append(decision)
            flags = " ".join(sorted(item.flags)) if item.flags else None
            sight_flags.append(flags)
            sight_date.append(_aware(item.internal_date))
            sight_via.append(item.via or None)  # None: the run's own
            for folder in item.also_in:
                for column, value in ((sight_target, target), (sight_folder, folder), (sight_ref, item.ref),
                                      (sight_decision, ALSO_IN), (sight_flags, flags),
                                      (sight_date, sight_date[-1]), (sight_via, sight_via[-1])):
                    column.append(value)

    def _count(self, decision: str) -> None:
        summary = self._summary
        if decision in (EXACT, DUPLICATE):
            summary.duplicates += 1
        elif decision == JOURNAL_MERGE:
            summary.merged += 1
        else:
            summary.archived += 1
        summary.decisions[decision] = summary.decisions.get(decision, 0) + 1

    def _not_a_mail(self, item: SourceProblem | SourceSkip) -> None:
        if isinstance(item, SourceProblem):
            self._problem(item.ref, item.message)
        elif isinstance(item, SourceSkip):
            self._cur.rows.errors.append(("skipped", item.ref, item.reason))
            self._summary.skipped += 1
            self._summary.problems.append({"ref": item.ref, "kind": "skipped", "message": item.reason})

    def _problem(self, ref: str, message: str) -> None:
        self._cur.rows.errors.append(("error", ref, message))
        self._summary.errors += 1
        self._summary.problems.append({"ref": ref, "kind": "error", "message": message})
        self.reporter.error(f"{ref}: {message}")

    def _store_new(self, item: SourceMail, p: Prepared, dkey: str, placement: Placement) -> None:
        """Write a new mail into the open pack and queue its message and recipient rows."""
        rows = self._cur.rows
        pack_id, (offset, length, size, csize) = self._pack_record(item, p)
        m = rows.messages.lists
        appends = self._message_appends
        if appends is None or appends[0] is not m:  # the task's columns' appends, looked up once per task
            appends = self._message_appends = (m, *(m[name].append for name in MESSAGE_COLUMNS))
        _, blob_ids, dedup_keys, pack_ids, offsets, lengths, sizes, csizes, message_ids, subjects, from_addrs, \
            from_names, sent_dates, internal_dates, spams, defects_col, id_conflicts = appends
        target = placement.target
        if target[1] != len(m["blob_id"]):
            raise AssertionError("the dedup decider and the writer disagree on the new messages")
        meta = p.meta
        defects = [*meta.defects, *p.defects] if meta.defects or p.defects else []
        internal_date = item.internal_date
        if meta.sent_date is None and internal_date is not None:
            # J9: the date the mail shows (sent date, else internal date) comes from the source, not the mail
            defects.append(f"date-from-{item.date_source or 'internal-date'}")
        # a row of MESSAGE_COLUMNS, appended column by column (Columns.add's order, without its checks)
        blob_ids(p.blob_id)
        dedup_keys(dkey)
        pack_ids(pack_id.hex())
        offsets(offset)
        lengths(length)
        sizes(size)
        csizes(csize)
        message_ids(meta.message_id)
        subjects(meta.subject)
        from_addrs(meta.from_addr)
        from_names(meta.from_name)
        sent = meta.sent_date
        sent_dates(None if sent is None else sent if sent.tzinfo else sent.replace(tzinfo=_UTC))  # _aware's
        internal_dates(None if internal_date is None else internal_date if internal_date.tzinfo
                       else internal_date.replace(tzinfo=_UTC))
        spams(bool(meta.spam))
        defects_col(",".join(defects) if defects else None)
        id_conflicts(placement.conflict_with is not None)
        pairs = [("to", a) for a in meta.to]
        if meta.cc:
            pairs += [("cc", a) for a in meta.cc]
        if meta.bcc:
            pairs += [("bcc", a) for a in meta.bcc]
        added = self._decider.add_recipients(target, pairs)
        if added:
            rows.recipients += [(target, kind, a) for kind, a in added]
        if placement.conflict_with is not None:  # both sides of an id-conflict are flagged
            kind, ref = placement.conflict_with
            if kind == "old":
                rows.conflicts.add(ref)
            else:
                rows.messages["id_conflict"][ref] = True

    def _pack_record(self, item: SourceMail, p: Prepared) -> tuple[bytes, tuple[int, int, int, int]]:
        """Where a new mail's record is: in its task's pack (the task wrote every distinct blob it read), or
        for a streamed mail in the driver's own pack (opened on demand); returns (pack id, (offset, length,
        size, csize) of its index entry)."""
        t = self._cur
        if not p.streamed:
            entry = t.entries.get(p.blob_id) if t.result is not None else None
            if entry is None or t.result.pack is None:
                raise AssertionError(f"the record of new mail {item.ref} is missing from its task's pack")
            t.refs.add(p.blob_id)
            return t.result.pack.pack_id, entry
        if t.writer is None:
            storage = self.archive.storage(self.archive.active_medium_id())
            t.writer = PackWriter(storage, self.archive.key, self.archive.uuid, pack_id=t.own_pack_id)
        e = t.writer.add_stream(bytes.fromhex(p.blob_id), item.size, _chunks(item.opener))
        return t.writer.pack_id, (e.offset, e.length, e.size, e.csize)

    def _lookup(self, mails, dkeys: list[str]) -> Known:
        """Which blob ids, dedup keys (``dkeys``, as hex, one per mail) and Message-IDs of this chunk the
        catalog already holds.

        Keys this run committed are answered from memory; the catalog is asked
        only about keys it may have held before the run (or that were spilled).
        """
        known = self._known
        found = found_in_memory([p.blob_id for _, p in mails], dkeys, [p.meta.message_id for _, p in mails],
                                (known.run_blobs, known.run_keys, known.run_mids),
                                (self._ahead_blobs, self._ahead_keys, self._ahead_mids))
        ask = [] if known.prefixes_empty else [  # a fresh archive's first run: no key can be in the catalog
            (p, dkey) for (_, p), dkey in zip(mails, dkeys) if known.may_hold(p.blob_id, dkey, p.meta.message_id)]
        if ask:
            blobs, dkeys, mids = store.lookup_keys(self.archive.catalog, [p.blob_id for p, _ in ask],
                                                   [dkey for _, dkey in ask], [p.meta.message_id for p, _ in ask])
            # the catalog's answer is the lowest msg_id: it wins over the run's own (later) one
            found.blobs.update(blobs)
            found.keys.update(dkeys)
            found.mids.update(mids)
        # converted mail and original MIME are told apart (toolkit.dedup); with no converted mail archived yet,
        # every key found is one of mail received as it was, and no message found is converted
        if (found.keys or found.mids) and self._conversions:
            found.keys, found.converted_keys, found.converted = store.split_by_conversion(
                self.archive.catalog, list(found.keys), list(found.mids.values()))
        return found

    # -- commit ------------------------------------------------------------------------------------
    def _commit(self, group: list["_Decided"]) -> None:
        """Commit decided tasks whose packs are written, in order: their packs, the driver's own packs (streamed
        mail) and their rows, in one transaction (each task's rows numbered from its own base).

        A committed pack holds only records the catalog references (purge, rebuild and verify rely on it:
        docs/architecture.md). A task seals every distinct mail it reads; when the driver found some of them
        already archived, the referenced records are copied into the driver's own pack and the task's pack
        is removed after the commit (a crash in between leaves it an orphan, as any uncommitted pack)."""
        summary = self._summary
        parts, done = [], []
        self._committing = group  # their open packs are aborted if the commit fails
        for t in group:
            task_pack = t.result.pack if t.result is not None else None
            if t.rows.empty() and t.writer is None and task_pack is None:
                continue
            whole = task_pack is not None and t.refs and t.refs == set(t.entries)
            if task_pack is not None and t.refs and not whole:
                self._move_referenced(t, task_pack)
            packs = []
            if t.writer is not None:
                packs.append(self._seal_open_pack(t.writer))
                t.writer = None
            if whole:
                packs.append(task_pack)
            summary.packs += len(packs)
            if packs:
                faults.hit("after_pack_seal")
            parts.append(Part(t.rows, packs, t.base))
            done.append((t, task_pack if task_pack is not None and not whole else None))
        if parts:
            medium_id = self.archive.active_medium_id()
            # the counters as they were when the last task was decided (later tasks may be decided already)
            last = group[-1]
            self._rows.commit_parts(parts, medium_id, last.counts_after or summary)
            storage = self.archive.storage(medium_id)
            for part, (t, unreferenced) in zip(parts, done):
                committed = part.committed
                for info in part.packs:  # the high-water mark goes on the medium after the commit (docs/reliability.md H2)
                    marks.mark_pack(storage, self.archive.uuid, info.pack_id.hex(),
                                    max(committed.blobs.values(), default=None))
                if unreferenced is not None:  # no catalog row references it (any more)
                    _drop_unreferenced(storage, unreferenced)
                self._known.add(committed.blobs, committed.keys, committed.mids)
        self._committing = []
        for t in group:
            self._forget_ahead(t)

    def _ahead_evidence(self, wanted: list[int]) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
        """The recipients (msg_id, kind, address) and envelope hashes (msg_id, sha256) that the decided tasks
        not committed yet add to these messages: with :func:`store.stored_evidence`, what the catalog will hold
        once they are committed."""
        want = set(wanted)
        recipients, envelopes = [], []
        for t in self._decided:
            base = t.base
            for (kind, ref), rkind, address in t.rows.recipients:
                msg_id = base + ref if kind == "new" else ref
                if msg_id in want:
                    recipients.append((msg_id, rkind, address))
            for (kind, ref), _text, sha in t.rows.envelopes:
                msg_id = base + ref if kind == "new" else ref
                if msg_id in want:
                    envelopes.append((msg_id, sha))
        return recipients, envelopes

    def _seal_open_pack(self, writer: PackWriter):
        """Publish the driver's own pack; a name already taken on the medium stops the whole run (B5, C9)."""
        try:
            return writer.seal()
        except ObjectExistsError:
            raise self._name_taken(writer.name, writer.count) from None

    def _name_taken(self, name: str, mails: int) -> PackNameTakenError:
        """The error that stops a run whose pack (a task's or the driver's own) met a name already taken.

        Create-only publishing never replaces the object there. The run does not pick another id
        and go on: it chose a fresh random id, so a file of that name was put there by something else
        (another home writing to this medium, a copy put back by hand, an id source that repeats),
        which the operator must look at before more is written; and the records of the pack are sealed
        for its id, so another id would mean sealing them again.
        """
        medium = self.archive.config.active_medium
        return PackNameTakenError(
            f"medium {medium.id} ({medium.location}): pack {name} is already there and this import "
            f"did not write it; refused to replace it (possible ID reuse). The import stopped: that file is "
            f"untouched, and the {mails} mails this pack held were not committed",
            next_step=NextStep.CHECK_STRANGER_PACK,
        )

    def _move_referenced(self, t: "_Decided", task_pack) -> None:
        """Copy the task pack's referenced records into the driver's own pack and point their rows there."""
        if t.writer is None:
            storage = self.archive.storage(self.archive.active_medium_id())
            t.writer = PackWriter(storage, self.archive.key, self.archive.uuid, pack_id=t.own_pack_id)
        reader = PackReader(self.archive.storage(self.archive.active_medium_id()), task_pack.name, self.archive.key,
                            self.archive.uuid)
        taken = t.writer.take_from(reader, [IndexEntry(bytes.fromhex(blob), *t.entries[blob]) for blob in t.refs])
        _point_rows(t.rows.messages, task_pack.pack_id.hex(), t.writer.pack_id.hex(),
                    {blob.hex(): (e.offset, e.length, e.size, e.csize) for blob, e in taken.items()})


class _Decided:
    """A task whose mails the driver decided: its rows wait for its pack and for the commits of the tasks before
    it (:meth:`Ingest._drive`, docs/architecture.md "Deciding ahead")."""

    __slots__ = ("chunk", "fut", "own_pack_id", "two_phase", "result", "entries", "refs", "rows", "writer", "base",
                 "counts_before", "counts_after", "keys", "ready_at")

    def __init__(self, chunk: list, fut, own_pack_id: bytes, base: int, counts_before: RunSummary):
        self.chunk, self.fut, self.own_pack_id = chunk, fut, own_pack_id  # fut: a Future, a PackResult, or None
        self.two_phase: bytes | None = None  # a two-phase task's pack id while its pack is still being written
        self.result: PackResult | None = None  # the task whose pack its new mails were written to
        self.entries: dict = {}  # blob id -> (offset, length, size, csize) in the task's pack
        self.refs: set[str] = set()  # blob ids of the task's pack that new mails reference
        self.rows = PendingRows()
        self.writer: PackWriter | None = None  # the driver's own pack (streamed mail, records moved), id own_pack_id
        self.base = base  # the msg_id its commit gives its first new message
        self.counts_before = counts_before  # the run's counters before it was decided, and after
        self.counts_after: RunSummary | None = None
        self.keys: tuple[dict, dict, dict] = ({}, {}, {})  # its blob ids, dedup keys, Message-IDs -> msg_id
        self.ready_at: float | None = None  # when the driver first saw its pack written (:meth:`Ingest._ready_count`)


def found_in_memory(blob_ids: list[str], dkeys: list[str], mids: list[str | None], run: tuple[dict, dict, dict],
                    ahead: tuple[dict, dict, dict]) -> Known:
    """The part of :meth:`Ingest._lookup` answered from memory: which of a chunk's blob ids, dedup keys and
    Message-IDs (None: none) this run committed (``run``: blob ids, dedup keys, Message-IDs -> msg_id) or
    decided ahead (``ahead``, the same; they win over the run's, except for a Message-ID). Set intersections,
    not a loop over the mails (tests/unit/test_ingest_lookup.py compares it with that loop)."""
    found = Known()
    run_blobs, run_keys, run_mids = run
    if run_blobs:
        found.blobs = {b: run_blobs[b] for b in run_blobs.keys() & blob_ids}
    if run_keys:
        found.keys = {k: run_keys[k] for k in run_keys.keys() & dkeys}
    if run_mids:
        found.mids = {m: run_mids[m] for m in run_mids.keys() & mids if m is not None}
    ahead_blobs, ahead_keys, ahead_mids = ahead
    if ahead_blobs or ahead_mids:
        # the tasks decided but not committed yet: as if committed (their msg_ids are the later ones: a key
        # committed again replaces the run's, a Message-ID keeps the first one's)
        if ahead_blobs:
            found.blobs.update({b: ahead_blobs[b] for b in ahead_blobs.keys() & blob_ids})
        if ahead_keys:
            found.keys.update({k: ahead_keys[k] for k in ahead_keys.keys() & dkeys})
        if ahead_mids:
            have = found.mids
            for m in ahead_mids.keys() & mids:
                if m is not None and m not in have:
                    have[m] = ahead_mids[m]
    return found


def _failed(fut) -> bool:
    """Did this task's future end without a result (cancelled, or an error)?"""
    return isinstance(fut, Future) and fut.done() and (fut.cancelled() or fut.exception() is not None)


def _entries(result: PackResult) -> dict[str, tuple[int, int, int, int]]:
    """A task pack's index (:meth:`PackResult.index_columns`) as blob id (hex) -> (offset, length, size, csize)."""
    blobs, offsets, lengths, sizes, csizes = result.index_columns()
    return dict(zip([b.hex() for b in blobs], zip(offsets, lengths, sizes, csizes)))


def _point_rows(messages, old: str, new: str, entries: dict[str, tuple[int, int, int, int]]) -> None:
    """Point the pending message rows of pack ``old`` at their records in pack ``new`` (blob id -> (offset,
    length, size, csize))."""
    packs = messages["pack_id"]
    if packs and packs.count(old) == len(packs):  # every row (a task's own pack): the columns made whole
        placed = list(zip(*map(entries.__getitem__, messages["blob_id"])))
        for name, column in zip(("offset", "length", "size", "csize"), placed):
            messages[name][:] = column
        packs[:] = [new] * len(packs)
        return
    for i, (blob, pack) in enumerate(zip(messages["blob_id"], messages["pack_id"])):
        if pack == old:
            e = entries[blob]
            messages["pack_id"][i], messages["offset"][i], messages["length"][i] = new, e[0], e[1]
            messages["size"][i], messages["csize"][i] = e[2], e[3]


def _drop_unreferenced(storage, pack) -> None:
    """Remove a task's pack that no catalog row references (all its mails were archived already), so that
    importing the same source twice does not double the medium; if this fails, it stays an adoptable orphan."""
    try:
        storage.delete(pack.name)
    except (OSError, StorageError):
        pass


def _chunks(opener) -> Iterator[bytes]:
    with opener() as f:
        while True:
            chunk = f.read(STREAM_CHUNK)
            if not chunk:
                return
            yield chunk


#: The source's last tasks are cut smaller and smaller (:class:`_Chunks`): each takes 1/TAPER_SHARE of what is left
#: (in :func:`_cost`), and none less than 1/TAPER_LEAST of a full chunk (docs/architecture.md "The import's tail";
#: bench/RESULTS.md "The import's tail")
TAPER_SHARE = 2
TAPER_LEAST = 8


class _Chunks:
    """The source's items cut into chunks (:func:`_take`), one chunk read ahead. With ``balance`` (tasks run on a
    pool), once the source is known to end within the chunk asked for or the one read ahead, that rest is the
    *tail*: it is cut into chunks that shrink, each about half of what is left, in :func:`_cost` (its items'
    share of the item limit plus its mail's share of the byte limit: a full chunk costs at least 1), and none
    below 1/8 (:data:`TAPER_SHARE`, :data:`TAPER_LEAST`), instead of a full chunk and a short one. Whichever
    worker is free first takes the next one, so the workers end within a small task of each other however far
    apart their last full tasks ran, and the last commit holds a small task's rows (docs/architecture.md
    "The import's tail"). A tail holding mail that its tasks fetch from a server (IMAP jobs: each task opens
    its sessions) is cut as before: a full chunk and the short rest into two halves of equal bytes.
    The items keep their order; no chunk exceeds the limits :func:`_take` is given, and the driver never holds
    more of the source than the chunk asked for and the one read ahead (docs/reliability.md K1, K3)."""

    def __init__(self, items: Iterator):
        self._it = iter(items)
        self._ahead: list | None = None  # the next chunk, already cut
        self._ended = False              # the source ended within ``_ahead``
        self._tail: deque | None = None  # the source's rest once it is known, cut as the chunks are asked for
        self._left = 0.0                 # its cost (:func:`_cost`)

    def take_exact(self, count: int) -> list:
        """The next ``count`` items (fewer where the source ends) as one chunk: a task started ahead was cut so
        (toolkit/early_tasks.py). Only before any other take."""
        if self._ahead is not None or self._tail is not None:
            raise AssertionError("take_exact after take")
        return list(itertools.islice(self._it, count))

    def take(self, n: int, max_bytes: int, max_remote: int = REMOTE_CHUNK_BYTES, *, balance: bool = False) -> list:
        if self._tail is not None:
            return self._taper(n, max_bytes, max_remote)
        if self._ahead is None:
            self._ahead, self._ended = _take_ended(self._it, n, max_bytes, max_remote)
        chunk, self._ahead = self._ahead, None
        if not balance:
            return chunk  # the next call reads on from the source
        if self._ended:  # the source ended within this chunk: it is the tail
            rest, nxt = chunk, []
        else:
            nxt, ended = _take_ended(self._it, n, max_bytes, max_remote)
            self._ahead, self._ended = nxt, ended
            if not ended:
                return chunk
            rest = chunk + nxt
        if any(map(_remote, rest)):
            halves = _halves(chunk, nxt, n) if nxt else None
            if halves is not None:
                chunk, self._ahead = halves
            return chunk
        self._tail, self._ahead = deque(rest), None
        self._left = _cost(rest, n, max_bytes)
        return self._taper(n, max_bytes, max_remote)

    def _taper(self, n: int, max_bytes: int, max_remote: int) -> list:
        """The tail's next chunk: items in order until it costs half of what is left (or 1/TAPER_LEAST), or a
        limit of :func:`_take` is reached; a rest that would cost less than half of that least is taken along."""
        tail, least = self._tail, 1.0 / TAPER_LEAST
        want = max(self._left / TAPER_SHARE, least)
        if self._left - want < least / 2:
            want = self._left
        out: list = []
        cost = 0.0
        size = raw = remote = 0
        per_item, per_byte = 1.0 / max(1, n), 1.0 / max(1, max_bytes)
        while tail:
            item = tail.popleft()
            out.append(item)
            cost += per_item
            if isinstance(item, SourceMail):
                length = item.length
                size += length
                cost += length * per_byte
                if item.raw is not None:
                    raw += length
                if _remote(item):
                    remote += length
            if (cost >= want or len(out) >= n or size >= max_bytes or raw >= RAW_CHUNK_BYTES
                    or remote >= max_remote):
                break
        self._left -= cost
        return out  # once the tail is empty, the next call gives an empty chunk: the source is exhausted


def _cost(items, n: int, max_bytes: int) -> float:
    """What a chunk costs its task, about: its items' share of ``n`` plus its mail's share of ``max_bytes`` (a
    chunk :func:`_take` cut at one of these limits costs at least 1; the tail's rule, :class:`_Chunks`)."""
    size = sum(item.length for item in items if isinstance(item, SourceMail))
    return len(items) / max(1, n) + size / max(1, max_bytes)


def _measures(items: list) -> tuple[int, int, int]:
    """(bytes, bytes handed over as bytes, bytes of remote jobs) of a chunk, as :func:`_take` counts them."""
    size = raw = remote = 0
    for item in items:
        if isinstance(item, SourceMail):
            size += item.length
            raw += item.length if item.raw is not None else 0
            remote += item.length if getattr(item.job, "batch_key", None) is not None else 0
    return size, raw, remote


def _halves(full: list, short: list, n: int) -> tuple[list, list] | None:
    """``full + short`` cut where its bytes are halved, or None when either half would be larger (in items or
    in any of :func:`_measures`) than ``full``, a chunk :func:`_take` gave."""
    both = full + short
    total = _measures(both)[0]
    acc, cut = 0, len(both)
    for i, item in enumerate(both):
        acc += item.length if isinstance(item, SourceMail) else 0
        if 2 * acc >= total:
            cut = i + 1
            break
    cut = min(max(cut, 1), len(both) - 1) if len(both) > 1 else cut
    first, second = both[:cut], both[cut:]
    if not first or not second:
        return None
    limit = _measures(full)
    for part in (first, second):
        if len(part) > max(n, len(full)) or any(m > lim for m, lim in zip(_measures(part), limit)):
            return None
    return first, second


def _remote(item) -> bool:
    """Is the item a mail its task fetches from a server itself (a batch job: toolkit/remote_jobs.py)?"""
    return getattr(getattr(item, "job", None), "batch_key", None) is not None


def _take(it: Iterator, n: int, max_bytes: int, max_remote: int = REMOTE_CHUNK_BYTES) -> list:
    """The next chunk: at most ``n`` items and ``max_bytes`` of mail, at most RAW_CHUNK_BYTES of mail the
    source handed over as bytes (POP3, mbox: the driver holds those until their task is back) and at most
    ``max_remote`` of mail the task fetches itself (IMAP)."""
    return _take_ended(it, n, max_bytes, max_remote)[0]


def _take_ended(it: Iterator, n: int, max_bytes: int, max_remote: int) -> tuple[list, bool]:
    """:func:`_take`, and whether the source ended within the chunk (no limit was reached)."""
    out = []
    size = raw = remote = 0
    add, mail, raw_limit = out.append, SourceMail, RAW_CHUNK_BYTES
    for item in it:
        add(item)
        if isinstance(item, mail):
            length = item.length
            size += length
            if item.raw is not None:
                raw += length
            job = item.job
            if job is not None and getattr(job, "batch_key", None) is not None:  # not a FileRegion
                remote += length
        if len(out) >= n or size >= max_bytes or raw >= raw_limit or remote >= max_remote:
            return out, False
    return out, True


def ingest(archive: Archive, importer: Importer, reporter: Reporter | None = None, **kw) -> RunSummary:
    return Ingest(archive, reporter, **kw).run(importer)
# _store_new unpacks the appends of the message columns in this order
assert MESSAGE_COLUMNS == ("blob_id", "dedup_key", "pack_id", "offset", "length", "size", "csize", "message_id",
                           "subject", "from_addr", "from_name", "sent_date", "internal_date", "spam", "defects",
                           "id_conflict")
