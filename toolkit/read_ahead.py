"""Reading a large local file ahead of its scan, on another core (docs/architecture.md "Reading an mbox ahead").

``import mbox`` scans a local mbox in the main process, one thread, front to back (importers/mbox.py); the
workers then read each message's region again, from the page cache. When the file is not in the page cache, that
scan is the run's bottleneck: besides waiting for the disk, the first copy out of pages the disk has just filled
costs far more CPU than a later one (on the developers' VM ~0.75 ms per MB against ~0.3, bench/RESULTS.md "Issue 15,
ninth session"), all of it on the scan's thread while the workers wait for their next chunk. A :class:`ReadAhead`
reads the file in a thread of its own, at most :data:`AHEAD_BYTES` beyond the scan's position, into one buffer it
reuses: the disk's reads and the first copies run on the other core (the read system call releases the GIL), and
the scan finds the pages in memory.

It starts only when the part of the file still to scan is not in the page cache (:data:`PROBES` pages spread over
it are read with ``RWF_NOWAIT``, which fails instead of waiting for the disk); a cached file costs nothing more.
It is a hint: it never changes what the scan reads, and an error ends it silently (the scan's own read reports it).
A cold mbox of 64 MiB or more is read past the page cache instead where the file system allows it
(toolkit/direct_read.py); this thread serves the rest.
"""
from __future__ import annotations

import os
import threading
import time

#: how far beyond the scan's position the thread reads (the page cache holds at most this much more of the file)
AHEAD_BYTES = 64 << 20
#: the size of each read
STEP_BYTES = 4 << 20
#: pages of the rest of the file looked at before it starts
PROBES = 8
_WAIT = 0.002  # seconds between two looks at the scan's position while far enough ahead


def cached(fd: int, start: int, end: int, probes: int = PROBES) -> bool | None:
    """Are ``probes`` pages spread over ``[start, end)`` of ``fd`` in the page cache? None when it cannot be told
    (no ``RWF_NOWAIT`` on this system or file system)."""
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None or end <= start:
        return None if nowait is None else True
    buf = bytearray(1)
    step = max(1, (end - start) // probes)
    for offset in range(start, end, step):
        try:
            os.preadv(fd, [buf], offset, nowait)
        except BlockingIOError:  # EAGAIN: that page is not in memory
            return False
        except OSError:  # EOPNOTSUPP and the like
            return None
    return True


class ReadAhead:
    """Read ``fd`` from ``start`` to ``end`` in a thread, at most AHEAD_BYTES beyond ``position`` (the scan sets it
    as it goes: one attribute, no call per message); only when that range is not in the page cache (``started``
    says whether it runs). :meth:`close` ends it (also usable as a context manager). The file descriptor stays the
    caller's: read with ``pread``, its position never moves."""

    def __init__(self, fd: int, start: int, end: int, ahead: int = AHEAD_BYTES, step: int = STEP_BYTES):
        self._fd, self._end, self._ahead, self._step = fd, end, ahead, step
        self.position = start   # the scan's position, set by the scan
        self.done = start       # read up to here
        self._stop = False
        self._thread: threading.Thread | None = None
        if end - start > step and cached(fd, start, end) is False:
            self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        buf = bytearray(self._step)
        fd, end = self._fd, self._end
        try:
            while not self._stop and self.done < end:
                if self.done - self.position >= self._ahead:
                    time.sleep(_WAIT)
                    continue
                n = os.preadv(fd, [buf], self.done)
                if n <= 0:
                    return
                self.done += n
        except OSError:  # the scan's own read says what is wrong
            return

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
