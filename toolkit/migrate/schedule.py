"""Running a plan (docs/architecture.md "Migration plans"): sources are read in parallel, committed by
one writer in plan-line order.

Each source gets a reader thread (at most ``parallel`` at once, at most ``per_server`` per
``host:port``) that runs its importer's scan and hands the items over through a bounded
:class:`~.feed.Feed`. The one committer (the calling thread) runs an ordinary ingest run per source,
in the order of the plan lines, with the archive's one catalog writer and dedup index: every
arrival gets the decision it gets in a sequential run of the same plan. Readers are started in plan
order too (so no later source can hold a slot an earlier one waits for).

A source that is throttled or whose maildrop is busy (IMAP ``[THROTTLED]``, POP3 ``[IN-USE]`` or
``[LOGIN-DELAY]``) after its importer's own retries is tried again after the other sources, once
``retry_wait`` seconds have passed, up to ``retry_rounds`` times; its cursor makes that a resume.
A source whose committed cursor says it was read to the end is skipped (``done-before``).

An IMAP source whose pack tasks fetch the mail (``fetch_in_tasks``, importers/imap_jobs.py) opens
connections beyond its reader's: one per worker process of its ingest run (the driver's own, for a
chunk prepared inline, is closed before the workers start). They count against ``per_server`` too.
Only the source being committed has pack tasks, so a server's fetching connections are at most
``W = min(workers, per_server - 1)`` at any time: its readers get ``per_server - W`` slots, and the
run of each of its sources at most W workers (with ``per_server`` 1 the reader fetches the mail itself,
as before).
"""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..catalog import ingest_rows as store
from ..reporter import NullReporter, Reporter
from .feed import Cancelled, FedImporter, Feed, held_bytes
from .report import MigrationReport, Outcome

THROTTLE_MARKS = ("[THROTTLED]", "[IN-USE]", "[LOGIN-DELAY]", "maildrop busy")
TOTAL = "all sources"
STOP_GRACE = 2.0  # seconds the source being committed gets to reach its next chunk after a stop request


class _Prefixed(NullReporter):
    """A source's reporter: its own progress is drawn by the scheduler; warnings and infos name the line."""

    def __init__(self, reporter: Reporter, label: str):
        self._r, self._label = reporter, label

    def warn(self, message):
        self._r.warn(f"{self._label}: {message}")

    def error(self, message):
        self._r.error(f"{self._label}: {message}")

    def info(self, message):
        self._r.info(f"{self._label}: {message}")


@dataclass
class _Job:
    outcome: Outcome
    importer: Any
    row: str                      # its progress row
    cursor: Any = None
    feed: Feed | None = None
    started: float = 0.0
    fetchers: int = 0             # connections its pack tasks open to its server (0: its reader fetches)


def throttled(exc: BaseException) -> bool:
    """Did the server ask to come back later (rather than fail)?"""
    text = str(exc)
    return any(m.lower() in text.lower() for m in THROTTLE_MARKS)


class Migration:
    """One run of a plan into an archive opened as writer."""

    def __init__(self, archive, jobs: list[tuple[Outcome, Any]], *, reporter: Reporter | None = None,
                 parallel: int = 1, per_server: int = 4, feed_bytes: int = 128 << 20,
                 retry_wait: float = 30.0, retry_rounds: int = 3, ingest_options: dict | None = None,
                 make_ingest: Callable | None = None):
        self.archive = archive
        self.reporter = reporter or NullReporter()
        self.parallel, self.per_server = max(1, parallel), max(1, per_server)
        self.feed_bytes = max(8 << 20, feed_bytes // self.parallel)
        self.retry_wait, self.retry_rounds = retry_wait, retry_rounds
        # the ingest settings of every source (workers, pack_target, parse_limit; an executor joins them here)
        self.ingest_options = dict(ingest_options or {})
        self._make_ingest = make_ingest
        self._jobs = [_Job(o, imp, f"{o.line.number:>3} {o.line.kind} {o.line.user or ''}".rstrip())
                      for o, imp in jobs]
        self._stop = threading.Event()
        self._current = None
        self._current_job: _Job | None = None
        self._slots = threading.Semaphore(self.parallel)
        self._servers: dict[str, threading.Semaphore] = {}
        self._fetching: dict[str, int] = {}  # server -> the most connections one source's pack tasks open to it
        for job in self._jobs:
            job.fetchers = self._fetchers(job)
            server = getattr(job.outcome.line, "server", None)
            if job.fetchers:
                self._fetching[server] = max(self._fetching.get(server, 0), job.fetchers)

    def _fetchers(self, job: _Job) -> int:
        """How many connections the pack tasks of ``job`` open to its server (0: its reader fetches the mail).

        One per worker process of its ingest run (with no workers, the driver's own); a Dask executor's
        workers close theirs after each batch and the run keeps as many tasks out as it may open."""
        imp = job.importer
        if not getattr(imp, "fetch_in_tasks", False) or not getattr(job.outcome.line, "server", None):
            return 0
        if self.per_server < 2:  # no room beside the reader's connection: the reader fetches, as before
            imp.fetch_in_tasks = False
            return 0
        pool = self._pool_size()
        if pool is not None:
            workers = pool
        else:
            workers = self.ingest_options.get("workers")
            workers = (os.cpu_count() or 1) if workers is None else workers
        fetchers = max(1, min(workers, self.per_server - 1))
        if pool is not None and fetchers < pool:  # more workers than connections: each closes its own after a batch
            imp.keep_sessions = False
        return fetchers

    def _pool_size(self) -> int | None:
        """The worker count of a pool the sources share (local or Dask), else None (each run starts its own)."""
        return getattr(self.ingest_options.get("executor"), "worker_count", None)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop reading, end the source being committed as interrupted (its committed part stays)."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.request_stop()  # it commits what it applied and ends at its next chunk
        for job in self._jobs:
            if job.feed is None:
                continue
            if job is self._current_job:  # its reader may be slow: stop waiting for it after a grace period
                timer = threading.Timer(STOP_GRACE, job.feed.cancel)
                timer.daemon = True
                timer.start()
            else:
                job.feed.cancel()

    def run(self) -> MigrationReport:
        started, t0 = dt.datetime.now(dt.timezone.utc), time.monotonic()
        report = MigrationReport("", self.parallel, self.per_server, [j.outcome for j in self._jobs], started)
        todo = [j for j in self._jobs if self._prepare(j)]
        self.reporter.start(TOTAL, len(todo), "sources")
        rounds = 0
        try:
            while todo and not self._stop.is_set():
                later = self._round(todo)
                if not later or rounds >= self.retry_rounds:
                    break
                rounds += 1
                self.reporter.info(f"{len(later)} throttled source(s): trying again in {self.retry_wait:.0f} s")
                if self._stop.wait(self.retry_wait):
                    break
                todo = [j for j in later if self._prepare(j)]
        finally:
            self.reporter.finish(TOTAL)
        report.seconds = time.monotonic() - t0
        return report

    def _prepare(self, job: _Job) -> bool:
        """Read the source's committed cursor: False when an earlier run read it to the end."""
        with self.archive.catalog.reading() as con:
            stored = store.stored_cursor(con, job.importer.source_uri)
        if isinstance(stored, dict) and stored.get("complete"):
            if job.outcome.status == "not-run":
                job.outcome.status = "done-before"
            return False
        job.cursor = store.resume_point(stored, getattr(job.importer, "incremental", False))
        job.feed = Feed(self.feed_bytes)
        return True

    def _round(self, jobs: list[_Job]) -> list[_Job]:
        """Read ``jobs`` in parallel and commit them in order; returns the throttled ones."""
        dispatcher = threading.Thread(target=self._dispatch, args=(jobs,), name="migrate-dispatch", daemon=True)
        dispatcher.start()
        later = []
        for job in jobs:
            if self._stop.is_set():
                break
            if self._commit(job):
                later.append(job)
            self.reporter.advance(TOTAL, 1)
        if self._stop.is_set():
            for job in jobs:
                job.feed.cancel()
        dispatcher.join(5.0)
        return later

    def _dispatch(self, jobs: list[_Job]) -> None:
        """Start the readers in plan order, each once a slot (and a reader's slot of its server) is free. A
        server's readers get ``per_server`` slots less those its sources' pack tasks may hold at once."""
        for job in jobs:
            server = getattr(job.outcome.line, "server", None)
            self._slots.acquire()
            gate = self._servers.setdefault(
                server, threading.Semaphore(self.per_server - self._fetching.get(server, 0))) if server else None
            if gate is not None:
                gate.acquire()
            if self._stop.is_set():
                self._release(gate)
                job.feed.close(Cancelled())
                continue
            threading.Thread(target=self._read, args=(job, gate), name=f"migrate-read-{job.outcome.line.number}",
                             daemon=True).start()

    def _release(self, gate) -> None:
        if gate is not None:
            gate.release()
        self._slots.release()

    def _read(self, job: _Job, gate) -> None:
        """The reader thread of one source: its items into its feed, then the slots back."""
        job.started = time.monotonic()
        self.reporter.start(job.row, None, "mails")
        error = None
        try:
            for item in job.importer.scan(job.cursor, _Prefixed(self.reporter, job.outcome.line.label())):
                job.feed.put(item)
                self.reporter.advance(job.row, 1, bytes=getattr(item, "length", 0) or held_bytes(item))
        except BaseException as exc:  # handed to the committer, which records it as the source's failure
            error = exc
        finally:
            self._release(gate)
            job.feed.close(error)

    def _commit(self, job: _Job) -> bool:
        """Commit one source's items as one ingest run; True when it was throttled (try again later)."""
        from ..ingest import Ingest

        out = job.outcome
        out.attempts += 1
        executor = self.ingest_options.get("executor")
        if getattr(executor, "broken", False):  # a worker of the shared pool died: a new pool for the next source
            from ..ingest import SharedPool, kill_pool

            kill_pool(executor)
            self.ingest_options["executor"] = SharedPool(executor.worker_count)
        options = dict(self.ingest_options)
        if job.fetchers:  # one connection per worker process: no more workers than reserved connections
            if self._pool_size() is not None:
                if job.fetchers < self._pool_size():
                    options["max_tasks"] = job.fetchers
            else:
                options["workers"] = job.fetchers if options.get("workers") != 0 else 0
        make = self._make_ingest or (lambda: Ingest(self.archive, _Prefixed(self.reporter, out.line.label()),
                                                    command="migrate", **options))
        ing = self._current = make()
        self._current_job = job
        try:
            summary = ing.run(FedImporter(job.importer, job.feed, job.cursor)).as_dict()
            out.add(summary)
            out.status, out.reason = summary["status"], None
            if summary["status"] == "interrupted":
                out.reason = "interrupted; a rerun resumes from the committed cursor"
        except Exception as exc:  # the source failed; what it committed stays, the rerun resumes
            partial = getattr(ing, "_summary", None)
            if partial is not None:
                out.add(partial.as_dict())
            interrupted = isinstance(exc, Cancelled) or self._stop.is_set()
            out.status = "interrupted" if interrupted else "failed"
            out.reason = "interrupted; a rerun resumes from the committed cursor" if interrupted else str(exc)
            if not interrupted and throttled(exc):
                return True
        finally:
            self._current = None
            out.seconds += time.monotonic() - (job.started or time.monotonic())
            self.reporter.finish(job.row)
        return False
