"""Pack tasks started ahead (docs/architecture.md "Tasks started ahead").

``import eml``, ``import maildir`` or ``import mbox`` of a local source spawns its workers at start-up
(toolkit/cli/early.py), and until now they waited ~0.3 s for the driver to load click, DuckDB and the archive, open the catalog and walk the tree before
their first task came. Here the start-up hands one of them the first chunk at once (:data:`AHEAD_TASKS`): the same
importer walks the tree and makes the same items, cut into a chunk by the driver's rule (:func:`cut`). Such a task
has no archive key and no medium yet: its worker reads, prepares and compresses its mails and holds the records; it
then asks, as every two-phase task does (toolkit/pack_tasks.py), and the answer brings the key material and the
medium with the blob ids to keep (:class:`toolkit.pack_tasks.SealAs`).

The driver takes a task up only when its own next chunk spans the same items with the same jobs
(:meth:`toolkit.ingest.Ingest._take_up_ahead`): a run that resumes, a tree changed in between, other limits, a
worker count or test hooks other than the pool's make it answer with nothing kept, and that task writes nothing.
So whatever the start-up did, the run imports what it would have imported without it.

No module here loads DuckDB, pyarrow or the catalog: this runs before the command line does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from .file_region import FileRegion
from .pack import PACK_ID_SIZE
from .pack_tasks import PackTask
from .prepare import DEFAULT_PARSE_LIMIT, LocalFile, read_by_task, task_job
from .source import SourceMail

#: the driver's limits of a chunk (toolkit/ingest.py CHUNK, CHUNK_BYTES; tests/unit/test_early_tasks.py checks
#: that they agree)
CHUNK, CHUNK_BYTES = 4096, 64 * 1024 * 1024
#: how many tasks the start-up sends ahead: one. Its worker then runs while the driver loads, on the core the
#: driver leaves; with one per worker the driver's start-up shared both cores with them and the run ended no
#: sooner (bench/RESULTS.md "Tasks started ahead": 2.80 s against 2.75 s; one ahead: 2.54 s against 2.68 s)
AHEAD_TASKS = 1


@dataclass
class AheadTask:
    """A task started ahead: the pack id it writes under, how many of the source's items its chunk spans (mails
    and what is not mail), its jobs, the limits it was cut with, and its future on the pool."""

    pack_id: bytes
    count: int
    jobs: list
    parse_limit: float | None
    n: int
    max_bytes: int
    future: object = None


def job_of(item) -> LocalFile | FileRegion | None:
    """The job of a mail its task reads from a local file or a region of one (:func:`toolkit.prepare.task_job`, as
    the run makes it), else None (bytes, a share's or a server's job, a mail the driver streams)."""
    if not isinstance(item, SourceMail) or item.raw is not None or not read_by_task(item):
        return None
    job = task_job(item)
    return job if isinstance(job, (LocalFile, FileRegion)) else None


def cut(items: Iterable, chunks: int, n: int, max_bytes: int) -> list[tuple[int, list]]:
    """Up to ``chunks`` chunks of the source's first items, each ended as the driver ends one
    (toolkit.ingest._take_ended: by the item that makes it ``n`` items or ``max_bytes`` of mail): (items spanned,
    jobs). The last one ends before the first mail that is not read from a local file by its task (the driver
    takes that chunk on from there), and none is empty of jobs."""
    out: list[tuple[int, list]] = []
    count = size = 0
    jobs: list = []
    for item in items:
        if isinstance(item, SourceMail):
            job = job_of(item)
            if job is None:
                break
            jobs.append(job)
            size += item.length
        count += 1
        if count >= n or size >= max_bytes:
            if jobs:
                out.append((count, jobs))
            if len(out) >= chunks:
                return out
            count = size = 0
            jobs = []
    if jobs:
        out.append((count, jobs))
    return out


def start(executor, items: Iterable, parse_limit: float | None, pack_target: int, sent: list,
          tasks: int = AHEAD_TASKS) -> None:
    """Cut the first ``tasks`` chunks of ``items`` and send each to ``executor`` as a task started ahead,
    appended to ``sent`` as it goes out (in the source's order: whatever stops this midway, each task sent is
    there for the run to answer)."""
    from .worker_entry import pack_in_worker

    n, max_bytes = CHUNK, min(CHUNK_BYTES, max(1, pack_target))
    parse_limit = parse_limit or DEFAULT_PARSE_LIMIT  # as the run's Ingest takes it
    for count, jobs in cut(items, tasks, n, max_bytes):
        task = PackTask(jobs, None, None, parse_limit, pack_id=os.urandom(PACK_ID_SIZE), two_phase=True)
        ahead = AheadTask(task.pack_id, count, jobs, parse_limit, n, max_bytes)
        ahead.future = executor.submit(pack_in_worker, task)
        sent.append(ahead)
