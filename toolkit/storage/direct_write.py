"""Writing a new local file past the page cache, one full buffer at a time, in a thread (docs/architecture.md
"Writing packs past the page cache").

A pack written through the page cache makes the kernel copy every byte into pages it has just allocated. On a
virtual machine whose host takes back the guest's free memory (virtio-balloon free page reporting, and a DAMON
pageout of idle memory), the first touch of such pages costs a fault on the host: on the developers' VM, writing
800 MB through the page cache cost 0.4 s and little CPU in one state and up to 7 s and 7 CPU-s in the other, while
the same bytes written with ``O_DIRECT`` from buffers the process keeps mapped cost 0.4 s and 0.02 CPU-s in both.

A direct write blocks until the device has the bytes (~2 ms for 4 MiB here). :class:`WriteBehind` hides that: the
caller fills one buffer while a thread writes the previous ones, in order, at the end of the file. Direct writes need
the length and the buffer aligned: every buffer but the last is written whole (its size a multiple of
:data:`toolkit.direct_read.ALIGN`), and the writer pads the last and truncates the file afterwards
(toolkit/storage/local.py). A file system that refuses ``O_DIRECT`` at the switch answers False in :func:`set_direct`;
one that refuses a direct write (``EINVAL``) gets that buffer and the rest through the page cache.

A slow device (a USB hard disk, a network file system mounted as a local medium) gains nothing from direct writes,
and a network file system may lose by them: the thread times its first :data:`PROBE_BYTES` of direct writes and,
below :data:`SLOW_BYTES_PER_S`, writes the rest of the file through the page cache; later files on that device
(:func:`slow_device`) go there from the start, for the life of the process.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading
import time
from typing import BinaryIO

from ..direct_read import give_buffer, take_buffer

#: buffers a file may have in the writer's hands at once, besides the one being filled
DEPTH = 2
#: the direct writes over which a device's speed is judged, and the speed below which it is written through the
#: page cache (this VM's disk: ~2 GB/s for 4 MiB direct writes, ~1 GB/s each for two workers writing at once)
PROBE_BYTES = 16 << 20
SLOW_BYTES_PER_S = 200e6

_SLOW_DEVICES: set[int] = set()  # st_dev of the devices found slow by this process


def slow_device(fd: int) -> bool:
    """Whether the device of ``fd`` was found too slow for direct writes by this process."""
    try:
        return os.fstat(fd).st_dev in _SLOW_DEVICES
    except OSError:
        return False


def set_direct(fd: int, on: bool) -> bool:
    """Switch ``O_DIRECT`` on or off for ``fd``; whether it is now on (False where the file system refuses it)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return on


def write_all(f: BinaryIO, buf: mmap.mmap, length: int, direct: bool) -> bool:
    """Write ``buf[:length]`` at ``f``'s position (``f`` unbuffered); whether the file is still direct afterwards: a
    direct write refused with ``EINVAL`` switches the file to the page cache and writes the same bytes again."""
    view = memoryview(buf)
    try:
        done = 0
        while done < length:
            try:
                n = f.write(view[done:length])
            except OSError as exc:
                if not (direct and exc.errno == errno.EINVAL):
                    raise
                direct = set_direct(f.fileno(), False)
                continue
            done += n or 0
    finally:
        view.release()
    return direct


class WriteBehind:
    """A thread that writes a file's full buffers in order while the caller fills the next.

    It takes over ``first``, the caller's buffer (page-aligned, from toolkit/direct_read.py's pool), and adds
    :data:`DEPTH` more of its size. :meth:`take` hands out a free one (waiting while all others are being written),
    :meth:`put` queues a filled one. A failed write is kept and raised by the next :meth:`take` or by
    :meth:`drain`; the buffers after it are not written. :meth:`close` stops the thread and gives the buffers back to
    the process's pool (toolkit/direct_read.py), also after a failure."""

    def __init__(self, f: BinaryIO, first: mmap.mmap, direct: bool):
        self._f = f
        self.direct = direct
        self.error: OSError | None = None
        more = [take_buffer(len(first)) for _ in range(DEPTH)]
        self._bufs = [first, *more]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for buf in more:
            self._free.put(buf)
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        #: bytes written directly and the seconds they took, until the device is judged (then None)
        self._probed: int | None = 0
        self._probe_seconds = 0.0
        self._thread: threading.Thread | None = threading.Thread(target=self._run, name="write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            buf, length = item
            if self.error is None:
                try:
                    self._write(buf, length)
                except OSError as exc:
                    self.error = exc
            self._free.put(buf)

    def _write(self, buf: mmap.mmap, length: int) -> None:
        if not self.direct or self._probed is None:
            self.direct = write_all(self._f, buf, length, self.direct)
            return
        t = time.perf_counter()
        self.direct = write_all(self._f, buf, length, True)
        self._probed += length
        self._probe_seconds += time.perf_counter() - t
        if self._probed >= PROBE_BYTES:
            done, self._probed = self._probed, None  # judged once
            if self.direct and done < SLOW_BYTES_PER_S * self._probe_seconds:
                self.direct = set_direct(self._f.fileno(), False)
                _SLOW_DEVICES.add(os.fstat(self._f.fileno()).st_dev)

    def take(self) -> mmap.mmap:
        buf = self._free.get()
        if self.error is not None:
            self._free.put(buf)
            raise self.error
        return buf

    def put(self, buf: mmap.mmap, length: int) -> None:
        self._todo.put((buf, length))

    def drain(self) -> None:
        """Wait until every buffer put is written (the thread ends); raise a write's failure."""
        self._stop()
        if self.error is not None:
            raise self.error

    def _stop(self) -> None:
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self._stop()
        for buf in self._bufs:
            give_buffer(buf)
        self._bufs = []
