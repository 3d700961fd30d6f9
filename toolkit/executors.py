"""Where an import's pack tasks run: the ``concurrent.futures.Executor`` seam (docs/architecture.md).

``local`` (the default) is a :class:`~concurrent.futures.ProcessPoolExecutor`
of spawned worker processes; ``local-cluster:N`` starts a Dask
``LocalCluster`` of N worker processes on 127.0.0.1; ``dask://HOST:PORT``
connects to a running Dask scheduler whose workers can reach the active
medium at the same location. Dask is an optional extra (``dask``).
"""
from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

from .errors import UsageError
from .process_guard import forbid_core_dumps

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
