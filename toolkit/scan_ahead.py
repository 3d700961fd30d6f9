"""A source's scan run in a thread of its own, a bounded number of items ahead of the pipeline (issue 15).

The driver takes a source's items chunk by chunk (toolkit/ingest.py) and, between takes, answers the pack
tasks' questions and commits. Run inline, a scan that costs CPU per byte (``import mbox`` reads, splits and
CRCs the whole mbox: tens of milliseconds per task's chunk) delays those answers while the workers wait. In
:func:`scan_ahead` the scan runs in a thread that stays at most ``depth`` batches of ``batch`` items ahead; a
take then finds its items ready, and the scan goes on while the driver waits for a worker (blocked in a queue
or a future: the thread gets the GIL).

Nothing changes but when the scan runs: the items come in the scan's order; the reporter calls the scan makes
(progress, warnings, infos) are recorded in the thread and made by the consumer in the same order among the items
(the reporter is only ever called from the consumer's thread); an exception of the scan is raised to the
consumer after the items before it. When the consumer stops early (the generator closed: a stop, an error of
the pipeline), the thread is told to stop, closes the scan (its ``finally`` runs in the thread) and is joined
before :func:`scan_ahead` returns, so the caller may close the source's file afterwards. The items read ahead
but not taken are dropped: they were never handed to the pipeline, so no cursor past them is committed and a
rerun reads them again (docs/reliability.md C7).

Use it only for a scan whose items are small (no mail bytes: the regions of a plain local mbox) and whose reads
cannot hang (a local file): ``depth * batch`` items are held at most.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

#: items per hand-over (one queue operation each: the per-item cost of a queue stays off the hot path)
BATCH = 128
#: batches the thread may be ahead
DEPTH = 16


class _Call(tuple):
    """A reporter call the scan made: (method name, args, kwargs)."""


class _Raised(tuple):
    """The scan's exception: (exception,)."""


class _Recorder:
    """The reporter the scan sees in its thread: records each call among the items (toolkit/reporter.py's methods)."""

    def __init__(self, out: list):
        self.out = out

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self.out.append(_Call(("start", (task, total, unit), {})))

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        self.out.append(_Call(("advance", (task, n), fields)))

    def finish(self, task: str) -> None:
        self.out.append(_Call(("finish", (task,), {})))

    def warn(self, message: str) -> None:
        self.out.append(_Call(("warn", (message,), {})))

    def error(self, message: str) -> None:
        self.out.append(_Call(("error", (message,), {})))

    def info(self, message: str) -> None:
        self.out.append(_Call(("info", (message,), {})))


_END = object()


def scan_ahead(scan: Callable[[Any], Iterator], reporter: Any, batch: int = BATCH, depth: int = DEPTH) -> Iterator:
    """The items of ``scan(recorder)`` run in a thread (see the module docstring); ``reporter`` gets its calls."""
    handed: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                handed.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        pending: list = []
        recorder = _Recorder(pending)
        it = scan(recorder)
        try:
            for item in it:
                pending.append(item)
                if len(pending) >= batch:
                    if not put(pending):
                        return
                    pending = recorder.out = []
            if put(pending):
                put(_END)
        except BaseException as exc:  # handed over: raised in the consumer's thread, after the items before it
            pending.append(_Raised((exc,)))
            if put(pending):
                put(_END)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="scan-ahead", daemon=True)
    thread.start()
    try:
        while True:
            try:
                entries = handed.get(timeout=0.5)
            except queue.Empty:
                if thread.is_alive() or not handed.empty():
                    continue
                raise RuntimeError("the scan-ahead thread ended without handing over its end") from None
            if entries is _END:
                return
            for entry in entries:
                kind = type(entry)
                if kind is _Call:
                    name, args, kwargs = entry
                    getattr(reporter, name)(*args, **kwargs)
                elif kind is _Raised:
                    raise entry[0]
                else:
                    yield entry
    finally:
        stop.set()
        thread.join()


__all__ = ["scan_ahead", "BATCH", "DEPTH"]
