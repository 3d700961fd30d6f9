"""A pack-task job that names a region of a local file: the worker reads the mail itself (docs/architecture.md).

``import mbox`` of a plain local mbox finds the message boundaries in the
driver (it must: the cursor and the order of the mails come from there) but
hands the pipeline one :class:`FileRegion` per message instead of its bytes.
The worker (:func:`toolkit.prepare.read_job`) opens the file, reads the
region ``[offset, offset + length)`` with ``pread`` and accepts it only when its
CRC-32 is the one the scan computed for the same bytes (the CRC of the
mbox cursor, docs/reliability.md A5): a file rewritten, truncated or swapped
after the scan gives a :class:`~toolkit.prepare.ReadFailure` saying what
changed, which the importer lists as a problem naming the mbox and the
message; it never becomes a silently different mail. Bytes appended after
the scan leave the regions before them as they were, so a mailbox that a
delivery agent writes to while it is imported still reads. The CRC guards
against a changed file, not an adversary (who could edit the source anyway).

Of the region, ``head`` bytes (the From_ line) and ``tail`` bytes (the
separating empty line) are not archived; with ``unquote`` one ``>`` is removed
from every line matching ``^>+From `` (docs/reliability.md L3), exactly as the
splitter does for the bytes it hands over itself. The importer sets it only for
a message of an mboxrd mbox in which its scan counted such lines: the CRC-32
makes the bytes read the bytes counted, so a region without it holds none.

A pack task's regions of one mbox follow one another in the file: :func:`toolkit.remote_jobs.read_jobs` hands a
run of them (equal ``run_key``: the same path) to :meth:`FileRegion.read_run`, which opens the file once and reads
the run in windows of :data:`RUN_WINDOW` bytes into one buffer, instead of an open, a ``pread`` and a
close per message. Each region is still accepted only with the scan's CRC-32; one that is not (the file changed,
or ends early), a window that cannot be read, a region larger than a window or out of order is read on its own by
:meth:`FileRegion.read`, so every failure and its message are those of a region read alone.
A run that is not in the page cache (the scan read the mbox past it, toolkit/direct_read.py) is read past it too:
in :data:`DIRECT_WINDOW`-sized aligned windows, the next one read by a thread while the mails of one are prepared.
"""
from __future__ import annotations

import os
import re
import stat
from typing import Iterator, NamedTuple

from .crc import crc32
from .direct_read import ALIGN, Prefetch, cold, open_direct, read_full, window_spans
from .prepare import ReadFailure

#: an mboxrd-quoted From_ line; one ``>`` goes (the splitter, importers/mbox.py, unquotes with the same pattern)
QUOTED_FROM = re.compile(rb"^>(>*From )", re.M)
#: the bytes :meth:`FileRegion.read_run` reads at once (a larger region is read alone)
RUN_WINDOW = 1 << 20
#: the bytes read at once past the page cache (each such read waits for the device)
DIRECT_WINDOW = 4 << 20
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileRegion(NamedTuple):
    """Read ``length`` bytes at ``offset`` of the local regular file ``path`` and archive the part between
    ``head`` and ``tail``; ``crc32`` is the scan's CRC-32 of the whole region, ``size``/``mtime`` what the
    scan saw of the file (named in the failure message)."""

    path: bytes
    offset: int
    length: int
    crc32: int
    head: int = 0
    tail: int = 0
    unquote: bool = False
    size: int = 0
    mtime: float = 0.0

    @property
    def run_key(self) -> bytes:
        """Consecutive jobs with equal keys are read together (:meth:`read_run`, :func:`toolkit.remote_jobs.read_jobs`)."""
        return self.path

    @staticmethod
    def read_run(regions: "list[FileRegion]") -> "Iterator[bytes | ReadFailure]":
        """What :meth:`read` gives for each of ``regions`` (of one file), in order: the file opened once, the
        regions read in windows of :data:`RUN_WINDOW` bytes (see the module docstring)."""
        fd, regular = -1, False
        try:
            fd = os.open(regions[0].path, _OPEN)
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            pass
        try:
            if not regular:
                for region in regions:  # each fails (or reads) as it does alone
                    yield region.read()
                return
            last = regions[-1].offset + regions[-1].length
            # a run not in the page cache is read past it, a window ahead (toolkit/direct_read.py): the scan did so
            dfd = open_direct(regions[0].path) if cold(fd, regions[0].offset, last) else None
            windows = _windows(dfd, regions) if dfd is not None else None
            if windows is not None:
                yield from _read_run_direct(regions, *windows)
                return
            view = memoryview(bytearray(RUN_WINDOW))  # the run's own (runs may be read in threads side by side)
            start = end = 0  # the file's bytes [start, end) are in view[:end - start]
            for region in regions:
                offset, length = region.offset, region.length
                if offset < start or offset + length > end:
                    if length > RUN_WINDOW:
                        yield region.read()
                        continue
                    try:
                        got = read_full(fd, view[:max(min(RUN_WINDOW, last - offset), length)], offset)
                    except OSError:
                        got = 0
                    start, end = offset, offset + got
                a = offset - start
                if offset + length > end or crc32(view[a:a + length]) != region.crc32:
                    yield region.read()  # what changed, said as for the region alone
                    continue
                yield region.accept(view[a:a + length])
        finally:
            if fd >= 0:
                os.close(fd)

    def read(self) -> bytes | ReadFailure:
        """The mail's bytes, or why the file no longer holds the region the scan read."""
        try:
            fd = os.open(self.path, _OPEN)
        except OSError as exc:
            return ReadFailure(exc.errno or 0, exc.strerror or str(exc))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return ReadFailure(0, "no longer a regular file")
            data = _pread_all(fd, self.length, self.offset)
        except OSError as exc:
            return ReadFailure(exc.errno or 0, exc.strerror or str(exc))
        finally:
            os.close(fd)
        if len(data) < self.length or crc32(data) != self.crc32:
            return ReadFailure(0, self._changed(st, len(data)))
        return self.accept(data)

    def accept(self, data: bytes | memoryview) -> bytes:
        """The archived part of the region's bytes ``data`` (checked by the caller): without the From_ line and the
        separating empty line, unquoted when asked."""
        raw = data[self.head:self.length - self.tail]
        raw = raw if isinstance(raw, bytes) else raw.tobytes()
        if self.unquote and b">From " in raw:
            raw = QUOTED_FROM.sub(rb"\1", raw)
        return raw

    def _changed(self, st: os.stat_result, got: int) -> str:
        what = (f"the file now ends at byte {st.st_size}, before the message's end at byte {self.offset + self.length}"
                if got < self.length else f"bytes {self.offset}-{self.offset + self.length} differ from what the scan read")
        if (st.st_size, st.st_mtime) != (self.size, self.mtime):
            what += f" (size {self.size} -> {st.st_size} bytes, modified since the scan)"
        return f"the file changed after the scan: {what}"


def _windows(dfd: int, regions: "list[FileRegion]") -> "tuple[Prefetch, list[int], int] | None":
    """The thread reading ``regions`` past the page cache (``dfd``) in windows of :data:`DIRECT_WINDOW` bytes, the
    window of each region, and ``dfd``; None (``dfd`` closed) where no thread or buffer can be had."""
    spans, where = window_spans(regions, DIRECT_WINDOW)
    try:
        return Prefetch(dfd, spans, DIRECT_WINDOW + 2 * ALIGN, 2), where, dfd
    except (OSError, RuntimeError):
        os.close(dfd)
        return None


def _read_run_direct(regions: "list[FileRegion]", reader: Prefetch, where: list[int],
                     dfd: int) -> "Iterator[bytes | ReadFailure]":
    """``read_run`` of regions not in the page cache, from ``reader``'s windows (``dfd`` is closed here), a thread
    reading the next window while the mails of one are prepared."""
    try:
        with reader as windows:
            held, view, start, end, broken = -1, memoryview(b""), 0, 0, False
            for region, w in zip(regions, where):
                offset, length = region.offset, region.length
                if w != held and w >= 0 and not broken:
                    view.release()
                    try:
                        got = windows.next()
                    except OSError:
                        got = None
                    if got is None:  # a read failed or the file ended early: the rest is read (and fails) alone
                        broken = True
                    else:
                        buf, start, n = got
                        view, end, held = memoryview(buf), start + n, w
                a = offset - start
                if w < 0 or w != held or offset + length > end or crc32(view[a:a + length]) != region.crc32:
                    yield region.read()  # what changed, said as for the region alone
                    continue
                yield region.accept(view[a:a + length])
            view.release()
    finally:
        os.close(dfd)


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer only at EOF)."""
    parts, got = [], 0
    while got < n:
        chunk = os.pread(fd, min(n - got, 1 << 30), offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


__all__ = ["FileRegion", "QUOTED_FROM"]
