"""Jobs a pack task reads from a server where it runs, and the one session each process keeps for them.

A pack task's jobs are mail bytes, local files (:class:`toolkit.prepare.LocalFile`) or *batch jobs*:
small picklable objects naming one mail of a remote source (an IMAP UID: ``importers/imap_jobs.py``)
that the worker fetches itself, so the mail's bytes never pass through the driver
(docs/architecture.md, "IMAP import over a long link"). A batch job has

* ``batch_key``: consecutive jobs with equal keys (the same folder of the same account) are read
  together, by one call of
* ``read_batch(jobs)`` (a classmethod): one result per job, in order: the mail's bytes, or a
  :class:`~toolkit.prepare.ReadFailure` whose message the importer lists (a mail expunged since the
  listing). A failure of the whole source (the retry budget spent, a rejected login) raises.

A job without a ``batch_key`` may have a ``run_key``: consecutive jobs with equal run keys (the regions of one
local mbox, :class:`toolkit.file_region.FileRegion`) are read by one call of ``read_run(jobs)`` (one result per job,
in order, each what the job's own read gives); a run of one is read alone. Runs do not count as remote jobs anywhere
(the driver's chunking looks at ``batch_key`` only).

The connection such a job opens is kept by :func:`cached_session` for the next task of the same
process: one session per process, replaced when a job of another account comes, closed by
:func:`close_sessions` (the driver calls it before its worker pool starts and at the end of a run,
so its own connection, opened by a chunk prepared inline, never stays open beside the workers').
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from .prepare import read_job

_SESSION: list = []  # per process: [key, session, close] of the one open session, or empty
_FINALIZER: list = []  # the exit hook that closes it (a pool's worker ends without running atexit)


def read_jobs(jobs: list) -> Iterator:
    """One result per job, in order: bytes, ReadFailure or NotMail (runs of batch jobs read together)."""
    i, n = 0, len(jobs)
    while i < n:
        key = getattr(jobs[i], "batch_key", None)
        if key is None:
            run = getattr(jobs[i], "run_key", None)  # regions of one local mbox (toolkit/file_region.py)
            j = i + 1
            if run is not None:
                while j < n and getattr(jobs[j], "batch_key", None) is None and getattr(jobs[j], "run_key", None) == run:
                    j += 1
            if j - i == 1:
                yield read_job(jobs[i])
            else:
                yield from _one_each(type(jobs[i]).read_run, jobs[i:j])
            i = j
            continue
        j = i + 1
        while j < n and (k := getattr(jobs[j], "batch_key", None)) is not None and (k is key or k == key):
            j += 1
        yield from _one_each(type(jobs[i]).read_batch, jobs[i:j])
        i = j


def _one_each(read: Callable[[list], Iterator], jobs: list) -> Iterator:
    """``read(jobs)``'s results, checked to be one per job (a reader that gives fewer or more is a bug)."""
    count = 0
    for result in read(jobs):
        count += 1
        yield result
    if count != len(jobs):
        raise AssertionError(f"{read.__qualname__} gave {count} results for {len(jobs)} jobs")


def cached_session(key: Any, open_: Callable[[], Any], close: Callable[[Any], None]) -> Any:
    """This process's session for ``key``: the open one, or a new one (the previous session is closed first)."""
    if _SESSION and _SESSION[0] == key:
        return _SESSION[1]
    close_sessions()
    session = open_()
    _SESSION[:] = [key, session, close]
    if not _FINALIZER:  # a worker process that ends logs out first (the server sees a clean end, not a drop)
        import multiprocessing.util

        _FINALIZER.append(multiprocessing.util.Finalize(None, close_sessions, exitpriority=10))
    return session


def drop_session(key: Any) -> None:
    """Forget (and close) the session of ``key``, e.g. after a protocol break: the next job opens a new one."""
    if _SESSION and _SESSION[0] == key:
        close_sessions()


def close_sessions() -> None:
    """Close this process's open session, if any (never raises)."""
    if not _SESSION:
        return
    _key, session, close = _SESSION
    _SESSION.clear()
    try:
        close(session)
    except Exception:
        pass


__all__ = ["read_jobs", "cached_session", "drop_session", "close_sessions"]
