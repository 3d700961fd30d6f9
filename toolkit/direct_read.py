"""Reading a large local file that is not in the page cache past it, with ``O_DIRECT`` (docs/architecture.md
"Reading a cold mbox past the page cache").

A cold ``import mbox`` reads the file twice: the driver's scan finds the message boundaries, then the workers read
each message's region (toolkit/file_region.py). Read through the page cache, the first read fills pages the kernel
has just allocated. On a virtual machine whose host takes back the guest's free memory (virtio-balloon free page
reporting), the first touch of each such page costs a fault on the host: on the developers' VM a buffered read of a
538 MB mbox took 0.07 CPU-s after a run that freed little memory and 0.8-1.1 CPU-s after one that freed much (restic,
whose Go heap lives in huge pages), all of it on the scan's one thread. A direct read lets the disk write into the
reader's own buffers, which stay mapped from block to block: 0.01 CPU-s for the same file, 0.22 s of wall time.

The price is that the page cache no longer holds the file for the second read, so the workers read their regions
directly as well, and the device is read twice. That is cheap on a device that reads fast and a loss on a slow one
(a USB hard disk): :class:`DirectStream` measures its first :data:`PROBE_BYTES` and gives up the direct reads for
the rest when they came at less than :data:`FAST_BYTES_PER_S`; the scan then reads through the page cache, and the
workers find their regions there (:func:`cold`).

Direct reads need the file offset, the length and the buffer aligned to the device's block size: reads start at a
multiple of :data:`ALIGN` bytes (4096, a multiple of every logical block size in use) into page-aligned buffers
(``mmap``), and the bytes before the wanted offset are skipped. A file system that refuses ``O_DIRECT`` (tmpfs, some
FUSE file systems) makes :func:`open_direct` answer None, and the callers read as before.
"""
from __future__ import annotations

import mmap
import os
import queue
import threading
import time
from typing import Iterable, Iterator

from .read_ahead import cached

#: offsets and lengths of direct reads are multiples of this
ALIGN = 4096
#: the size of each of the scan's direct reads
BLOCK = 4 << 20
#: how many blocks the scan's reading thread may hold ahead of it
DEPTH = 12
#: the bytes over which the device's speed is judged, and the speed below which the direct reads stop
PROBE_BYTES = 64 << 20
FAST_BYTES_PER_S = 600e6

_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | getattr(os, "O_DIRECT", 0)


def open_direct(path: bytes | str) -> int | None:
    """A descriptor of ``path`` that reads past the page cache, or None where that is not to be had (no
    ``O_DIRECT``, a file system that refuses it at open or at the first read)."""
    if not getattr(os, "O_DIRECT", 0):
        return None
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    probe = take_buffer(ALIGN)
    try:
        os.preadv(fd, [probe], 0)
    except OSError:
        os.close(fd)
        return None
    finally:
        give_buffer(probe)
    return fd


def cold(fd: int, start: int, end: int) -> bool:
    """Is ``[start, end)`` of ``fd`` known not to be in the page cache (then a direct read costs the cache nothing)?"""
    return cached(fd, start, end, probes=4) is False


# Buffers are kept for the process's next reads: on the VM described above, fresh memory costs as much to touch as
# a fresh page of the page cache, and a buffer touched once costs nothing more. They are private mappings (an
# anonymous ``mmap`` is shared with forked children by default), and a forked child starts with an empty pool: a
# buffer is never written by two processes.
_POOL: dict[int, list[mmap.mmap]] = {}
_POOL_LOCK = threading.Lock()
_PRIVATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def _forget_pool() -> None:
    global _POOL_LOCK
    _POOL.clear()  # the parent's buffers stay mapped in the child (copy-on-write) until they are collected
    _POOL_LOCK = threading.Lock()  # a lock held by another thread of the parent at fork would never be released


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def take_buffer(size: int) -> mmap.mmap:
    with _POOL_LOCK:
        free = _POOL.get(size)
        if free:
            return free.pop()
    return mmap.mmap(-1, size, flags=_PRIVATE)


def give_buffer(buf: mmap.mmap) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(len(buf), []).append(buf)


def read_full(fd: int, into: memoryview, offset: int) -> int:
    """Read ``len(into)`` bytes at ``offset`` of ``fd`` into ``into`` (for a direct descriptor: both aligned, the
    memory page-aligned); how many were read, fewer only at the file's end."""
    got, n = 0, len(into)
    while got < n:
        k = os.preadv(fd, [into[got:]], offset + got)
        if not k:
            break
        got += k
        if got % ALIGN:
            break  # the file's end (a direct read goes on only from an aligned offset; a plain one ends there too)
    return got


def read_span(fd: int, buf: mmap.mmap, offset: int, length: int) -> int:
    """:func:`read_full` of ``buf[:length]`` (``buf`` must hold ``length`` bytes)."""
    if length > len(buf):
        raise ValueError(f"a read of {length} bytes into a buffer of {len(buf)}")
    view = memoryview(buf)[:length]
    try:
        return read_full(fd, view, offset)
    finally:
        view.release()


class Prefetch:
    """A thread that reads ``spans`` (``(offset, length)`` pairs, in order) of ``fd`` into buffers of ``size``
    bytes, at most ``depth`` spans ahead of :meth:`next`; it stops after a span the file's end cut short.
    ``fd`` may be changed between two spans (by the ``spans`` iterator, which runs in the thread)."""

    def __init__(self, fd: int, spans: Iterable[tuple[int, int]], size: int, depth: int):
        self.fd = fd
        #: bytes read and seconds spent in the reads themselves (not waiting for a free buffer)
        self.read_bytes, self.read_seconds = 0, 0.0
        self._bufs = [take_buffer(size) for _ in range(depth + 1)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for buf in self._bufs:
            self._free.put(buf)
        self._full: queue.SimpleQueue = queue.SimpleQueue()
        self._held: mmap.mmap | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(spans,), name="prefetch", daemon=True)
        self._thread.start()

    def _run(self, spans: Iterable[tuple[int, int]]) -> None:
        try:
            for offset, length in spans:
                buf = self._free.get()
                if self._stop:
                    break
                t = time.perf_counter()
                got = read_span(self.fd, buf, offset, length)
                self.read_seconds += time.perf_counter() - t
                self.read_bytes += got
                self._full.put((buf, offset, got))
                if got < length:
                    break
            self._full.put(None)
        except BaseException as exc:  # raised by next(): a reader never waits for a thread that is gone
            self._full.put(exc)

    def next(self) -> tuple[mmap.mmap, int, int] | None:
        """The next span read: ``(buffer, offset, bytes read)``; None after the last. The buffer of the one before
        goes back to the thread. A read error of the thread is raised here."""
        if self._held is not None:
            self._free.put(self._held)
            self._held = None
        item = self._full.get()
        if item is None or isinstance(item, BaseException):
            self._full.put(item)  # every later call gives the same
            if item is not None:
                raise item
            return None
        self._held = item[0]
        return item

    def close(self) -> None:
        self._stop = True
        for buf in self._bufs:
            self._free.put(buf)  # wakes a thread waiting for a buffer
        self._thread.join()
        for buf in self._bufs:
            give_buffer(buf)
        self._bufs = []

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DirectStream:
    """``read(n)`` of the file behind ``fd`` (opened by :func:`open_direct`, closed by :meth:`close`) from ``start``
    to its end, read in :data:`BLOCK`-sized direct reads by a :class:`Prefetch` thread, at most :data:`DEPTH` blocks
    ahead. When the first :data:`PROBE_BYTES` came slower than :data:`FAST_BYTES_PER_S` the thread goes on through
    the page cache (``direct`` turns False). A read error is raised by :meth:`read`."""

    def __init__(self, fd: int, start: int, path: bytes | str, block: int = BLOCK, depth: int = DEPTH,
                 probe: int = PROBE_BYTES, fast: float = FAST_BYTES_PER_S):
        self._fd, self._path, self._probe, self._fast = fd, path, probe, fast
        self._buffered = -1
        self.direct = True
        first = start - start % ALIGN
        self._skip = start - first
        self._view: memoryview | None = None
        self._a = self._b = 0
        self._reader: Prefetch | None = None
        self._reader = Prefetch(fd, self._blocks(first, block), block, depth)

    def _blocks(self, pos: int, block: int) -> Iterator[tuple[int, int]]:
        judged = False
        while True:
            reader = self._reader
            if not judged and reader is not None and reader.read_bytes >= self._probe:
                judged = True  # once, on the time spent in the reads (not in waiting for the scan)
                if reader.read_bytes / max(reader.read_seconds, 1e-9) < self._fast:
                    self._buffered = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                    reader.fd = self._buffered
                    self.direct = False
            yield pos, block
            pos += block

    def read(self, n: int = -1) -> bytes:
        while self._a >= self._b:
            if self._view is not None:
                self._view.release()
                self._view = None
            got = self._reader.next()
            if got is None:
                return b""
            buf, _, length = got
            self._view, self._a, self._b = memoryview(buf), self._skip, length
            self._skip = 0
        take = self._b - self._a if n < 0 else min(n, self._b - self._a)
        self._a += take
        return self._view[self._a - take:self._a].tobytes()

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._reader.close()
        os.close(self._fd)
        if self._buffered >= 0:
            os.close(self._buffered)


def window_spans(regions: list, window: int) -> tuple[list[tuple[int, int]], list[int]]:
    """For regions (``offset``/``length``, in file order) read in windows of at most ``window`` bytes: the aligned
    spans to read, and for each region the index of the span holding it, or -1 for one larger than a window (read
    alone)."""
    last = regions[-1].offset + regions[-1].length
    spans: list[tuple[int, int]] = []
    where: list[int] = []
    start = end = 0
    for r in regions:
        if r.offset < start or r.offset + r.length > end:
            if r.length > window:
                where.append(-1)
                continue
            start = r.offset - r.offset % ALIGN
            end = r.offset + max(min(window, last - r.offset), r.length)
            end += -end % ALIGN
            spans.append((start, end - start))
        where.append(len(spans) - 1)
    return spans, where
