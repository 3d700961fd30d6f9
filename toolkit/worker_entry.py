"""What a local or Dask worker process runs: its start (:func:`worker_init`) and its pack task
(:func:`pack_in_worker`).

Kept apart from :mod:`toolkit.ingest` so that a worker imports only what a pack task needs (reading,
preparing, sealing, writing a pack) and not the driver's catalog, DuckDB and Arrow compute: each worker
process of an import, migration or verify pays its imports once, at its start.
"""
from __future__ import annotations

import gc
import os
import signal

from . import faults
from .pack_tasks import Asking, PackResult, PackTask, build_pack
from .process_guard import forbid_core_dumps, malloc_thresholds

#: In a local worker process: (the driver's queue of two-phase questions, this worker's slot, the queue
#: its answers come on); see :func:`toolkit.pack_tasks.build_pack` and :meth:`Ingest._await_question`
_CHANNEL: tuple | None = None


def worker_init(fault_points: dict | None = None, fault_count=None, channel: tuple | None = None) -> None:
    """Workers leave signals to the driver, and die with it (a killed import leaves no stray process).
    ``channel`` (questions queue, answer queues, slot counter): the two-phase tasks' way to the driver."""
    global _CHANNEL
    if channel is not None:
        questions, answers, slots = channel
        with slots.get_lock():
            slot = slots.value
            slots.value += 1
        _CHANNEL = (questions, slot, answers[slot])
    # the test fault points of the driver; a kill point reached here kills the driver too, and its passages
    # are counted with the driver's (toolkit/faults.py)
    faults.configure(**{**(fault_points or {}), "kill_also": os.getppid() if (fault_points or {}).get("kill") else None})
    if fault_count is not None:
        faults.share(fault_count)
    forbid_core_dumps()  # a spawned program is dumpable again (toolkit/process_guard.py)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the driver died before prctl took effect
        os._exit(1)
    quiet_gc()
    steady_malloc()


#: the cyclic collector's first threshold in a worker (Python's default is 700; see :func:`quiet_gc`)
WORKER_GC_THRESHOLD = 20_000


def quiet_gc() -> None:
    """Make the cyclic garbage collector cheap in a worker process: what the imports left is moved out of
    its reach (``gc.freeze``: modules, functions and classes live as long as the process and are never
    garbage), and it looks at new objects after 20,000 allocations instead of 700. A pack task allocates
    a few dozen containers per mail that are freed by their reference counts (a mail's rows hold no cycle);
    with Python's defaults the collector ran ~100 times per task, each full pass walking every object of
    the imported modules (about 6 µs per mail: bench/RESULTS.md "Worker CPU of import eml")."""
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD, 20, 20)


#: the values a worker gives glibc's malloc: allocations up to 4 MiB come from the heap, and up to 32 MiB of free
#: memory at its top is kept for the next task (see :func:`steady_malloc`)
WORKER_MMAP_THRESHOLD = 4 << 20
WORKER_TRIM_THRESHOLD = 32 << 20


def steady_malloc() -> bool:
    """Let a worker process reuse its memory from one pack task to the next instead of asking the kernel
    again for every large buffer (a mail's bytes, its compressed bytes and record, the 1 MiB blocks of a
    pack: toolkit/pack.py). With glibc's defaults the threshold above which a buffer gets its own
    mapping moves with the sizes freed, and the heap's top is handed back once 2x that threshold is free,
    so each task's buffers were faulted in afresh: 550–2,900 minor page faults per 1,600-mail task after the
    first, 0–1,200 with these (bench/RESULTS.md "Worker copies and page faults"). Fixed thresholds keep the
    memory a task used (bounded: at most 32 MiB more than the largest task's heap, which the worker
    reached anyway; a buffer over 4 MiB is still mapped and unmapped on its own, so a large mail's memory is
    given back as before: docs/reliability.md K1). False where there is no glibc."""
    return malloc_thresholds(WORKER_MMAP_THRESHOLD, WORKER_TRIM_THRESHOLD)


def pack_in_worker(task: PackTask, slow_point: str | None = None) -> PackResult:
    """:func:`~toolkit.pack_tasks.build_pack` in a worker process, behind a fault point that can stall the
    worker outside the per-mail watchdog (tests: a stop request must still end the run). ``slow_point``:
    the driver's test slow point, for Dask workers (local ones get theirs when they start)."""
    global _GUARDED
    if not _GUARDED:  # a Dask worker is not started by us: it gets the guard with its first task (G7)
        _GUARDED = forbid_core_dumps() or True
    if slow_point:
        faults.configure(slow=slow_point)
    faults.hit("worker_prepare")
    return build_pack(task, decide=_DriverChannel(task.pack_id) if task.two_phase and _CHANNEL is not None else None)


class _DriverChannel(Asking):
    """A two-phase task's :class:`~toolkit.pack_tasks.Asking` over the pool's queues: the question goes to the driver,
    the answer comes on this worker's queue (one answer per question: a worker runs one task at a time, so the answer
    on its queue is its task's)."""

    def __init__(self, pack_id: bytes):
        self._pack_id = pack_id

    def ask(self, prepared: list, sizes: dict[str, int]) -> None:
        questions, slot, _answers = _CHANNEL
        questions.put((self._pack_id, slot, prepared, sizes))

    def answer(self, wait: bool):
        answers = _CHANNEL[2]
        if not wait and answers.empty():  # one poll of the queue's pipe: no answer yet
            return None
        return answers.get()


_GUARDED = False
