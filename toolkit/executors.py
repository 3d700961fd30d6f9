"""Where an import's pack tasks run: the ``concurrent.futures.Executor`` seam (docs/architecture.md).

``local`` (the default) is a :class:`~concurrent.futures.ProcessPoolExecutor`
of spawned worker processes; ``local-cluster:N`` starts a Dask
``LocalCluster`` of N worker processes on 127.0.0.1; ``dask://HOST:PORT``
connects to a running Dask scheduler whose workers can reach the active
medium at the same location. Dask is an optional extra (``dask``).
"""
from __future__ import annotations

import multiprocessing
import os
import re
import signal
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

from .errors import UsageError
from .process_guard import die_with_parent, forbid_core_dumps

_CLUSTER = re.compile(r"local-cluster:(\d+)\Z")
_DASK = re.compile(r"dask://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d+)\Z")


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``--executor`` value: kind ``local``, ``local-cluster`` (``workers``) or ``dask`` (``address``)."""

    kind: str = "local"
    workers: int = 0
    address: str = ""

    @property
    def distributed(self) -> bool:
        return self.kind != "local"


def parse_executor(text: str | None) -> ExecutorSpec:
    """``local``, ``local-cluster:N`` or ``dask://HOST:PORT`` (None or empty: local)."""
    text = (text or "local").strip()
    if text == "local":
        return ExecutorSpec()
    if m := _CLUSTER.match(text):
        n = int(m.group(1))
        if not 1 <= n <= 256:
            raise UsageError(f"executor {text}: the number of workers must be between 1 and 256")
        return ExecutorSpec("local-cluster", workers=n)
    if m := _DASK.match(text):
        return ExecutorSpec("dask", address=f"tcp://{m.group(1)}:{m.group(2)}")
    raise UsageError(f"executor {text!r}: expected local, local-cluster:N or dask://HOST:PORT")


class DaskExecutor(Executor):
    """A Dask client's ``concurrent.futures`` executor, owning the client (and the LocalCluster it started).

    A task lost with its worker is run again by the scheduler (a new pack id: the first attempt's file,
    if it was sealed, is an adoptable orphan).
    """

    def __init__(self, spec: ExecutorSpec):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("a Dask executor needs Dask, which is not installed (the optional extra 'dask')") from None
        self.spec = spec
        self.cluster = None
        if spec.kind == "local-cluster":
            self.cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None, silence_logs=40)
            self.client = Client(self.cluster)
        else:
            self.client = Client(spec.address, timeout=30)
        # the archive key reaches the workers with the tasks: no core file may hold it (docs/reliability.md
        # G7); a worker that joins later guards itself in its first task (toolkit.worker_entry.pack_in_worker)
        self.client.run(forbid_core_dumps)
        self._inner = self.client.get_executor(pure=False)

    @property
    def worker_count(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def worker_pids(self) -> list[int]:
        """The process ids of the workers (tests kill one to show a lost task is run again)."""
        return sorted(self.client.run(_pid).values())

    def submit(self, fn, /, *args, **kwargs):
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def worker_dump_guards(client) -> dict[str, tuple[int, int]]:
    """Per worker address: (RLIMIT_CORE hard limit, PR_GET_DUMPABLE); (0, 0) when core dumps are off."""
    return client.run(_dump_guard)


def _dump_guard() -> tuple[int, int]:
    import ctypes
    import resource

    return resource.getrlimit(resource.RLIMIT_CORE)[1], ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


def _pid() -> int:
    import os

    return os.getpid()


def open_executor(spec: ExecutorSpec, workers: int, initializer, initargs: tuple) -> Executor:
    """The executor for ``spec``: local worker processes (``workers`` of them, spawned), or Dask."""
    if spec.distributed:
        return DaskExecutor(spec)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer,
                               initargs=initargs)


class StartedPool:
    """An import's local worker processes spawned before the run starts (the command line's, at its very start:
    docs/cli.md "import: workers from the start"): the pool :meth:`toolkit.ingest.Ingest._start_executor` opens —
    ``workers`` spawned processes, each started by :func:`toolkit.worker_entry.worker_init` with the test fault
    points ``fault_points`` (no shared counter: no kill point) and the two-phase channel (a questions queue, one
    answer queue per worker, the slot counter) — but all spawned now, so that their interpreters and imports run
    while the driver still loads its own modules and opens the archive.

    The run takes it (:meth:`take`) when it would start exactly this pool; whoever holds it last ends it
    unused (:meth:`abandon`). This module imports nothing heavy: the command line builds one before it loads
    click, rich, DuckDB or Arrow, and a worker imports its pack task modules in its initializer (:func:`start_worker`).
    """

    def __init__(self, workers: int, fault_points: dict):
        if workers < 1 or fault_points.get("kill"):
            raise ValueError("a started pool has at least one worker and no kill point (its passages are not shared)")
        ctx = multiprocessing.get_context("spawn")
        self.workers = workers
        self.fault_points = dict(fault_points)
        #: tasks the start-up sent ahead to these workers (toolkit/early_tasks.py), for the run that takes the pool
        self.ahead: list = []
        self.questions = ctx.Queue()
        self.answers = [ctx.Queue() for _ in range(workers)]
        channel = (self.questions, self.answers, ctx.Value("i", 0))
        self.executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=start_worker, initargs=(self.fault_points, None, channel))
        # A spawn pool starts a process per submit while none is idle: one trivial task per worker starts them all
        # now. SIGINT/SIGTERM blocked meanwhile, as Ingest's own submits do (toolkit/ingest.py _submit_shielded): the
        # workers and the pool's thread start with them blocked, and a Ctrl-C during their imports kills none.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for _ in range(workers):
                self.executor.submit(int)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def pids(self) -> list[int]:
        """The worker processes' ids (none once taken or abandoned)."""
        return sorted((getattr(self.executor, "_processes", None) or {}).keys())

    def take(self, workers: int, fault_points: dict) -> tuple[ProcessPoolExecutor, object, list] | None:
        """(the executor, the questions queue, the answer queues) for a run that would start ``workers`` workers with
        ``fault_points``, once: the run then owns them. A run that would start other workers gets None, and the
        started ones end now (as they do when a worker of theirs died)."""
        executor = self.executor
        if executor is None:
            return None
        if workers != self.workers or dict(fault_points) != self.fault_points or getattr(executor, "_broken", False):
            self.abandon()
            return None
        self.executor = None
        return executor, self.questions, self.answers

    def abandon(self) -> None:
        """End the workers now, unused (killed: they may still be importing), and the pool with them."""
        executor, self.executor = self.executor, None
        if executor is None:
            return
        manager = getattr(executor, "_executor_manager_thread", None)  # kill_pool's shutdown(wait=False) forgets it
        kill_pool(executor)
        executor.shutdown(wait=True, cancel_futures=True)
        # The pool's thread ends too before this returns (its workers gone, it only closes the pool's pipes and
        # semaphores): the caller may be a signal's handler that ends the process right after (toolkit/cli/early.py
        # ``ended``), and the thread, still closing them meanwhile, printed a traceback or left a semaphore to the
        # resource tracker's warning (tests/integration/test_import_early_cli.py, a fresh-clone run).
        if manager is not None:
            manager.join(_MANAGER_JOIN)
        for q in (self.questions, *self.answers):
            q.cancel_join_thread()


#: how long :meth:`StartedPool.abandon` waits for the pool's thread (it needs milliseconds once its workers are killed)
_MANAGER_JOIN = 30.0


def start_worker(fault_points: dict, fault_count, channel: tuple) -> None:
    """The initializer of a :class:`StartedPool`'s workers: :func:`toolkit.worker_entry.worker_init`, imported here.
    The worker dies with its driver from the start (that driver is still loading its modules and may be ended
    by a signal meanwhile)."""
    die_with_parent()
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the driver ended before the line above took effect
        os._exit(1)
    from .worker_entry import worker_init

    worker_init(fault_points, fault_count, channel)


def kill_pool(executor: ProcessPoolExecutor) -> None:
    """Kill a process pool's workers now and let its manager thread end (never waits on a worker)."""
    procs = list((getattr(executor, "_processes", None) or {}).values())
    for proc in procs:
        try:
            proc.kill()
        except (OSError, ValueError):
            pass
    for proc in procs:
        proc.join(5.0)
    # A worker killed while writing a large result leaves half a message in
    # the result pipe; the pool's manager thread then waits in recv() for
    # the rest forever, because this process holds the pipe's write end
    # too, and the interpreter hangs at exit joining that thread. With
    # every worker gone, closing our write end turns the wait into EOF.
    queue = getattr(executor, "_result_queue", None)
    writer = getattr(queue, "_writer", None)
    if writer is not None and not any(proc.is_alive() for proc in procs):
        try:
            writer.close()
        except OSError:
            pass
    executor.shutdown(wait=False, cancel_futures=True)
