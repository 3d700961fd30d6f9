"""Reading a cold local file past the page cache (toolkit/direct_read.py): the scan's stream and the workers'
windows give exactly the file's bytes from any offset, leave the file out of the page cache, go back to the page
cache on a slow device, report a failed read instead of hanging; FileRegion runs and ``import mbox`` give the same
results as when the file is cached."""
from __future__ import annotations

import os
import random
import time
import zlib

import pytest

from importers.mbox import MboxImporter
from toolkit.direct_read import ALIGN, DirectStream, Prefetch, open_direct, window_spans
from toolkit.file_region import FileRegion
from toolkit.prepare import ReadFailure
from toolkit.read_ahead import cached
from toolkit.reporter import NullReporter

from tests.page_cache import evicted, until

MIB = 1 << 20


@pytest.fixture
def cold_file(tmp_path):
    """12 MiB and an odd tail of random bytes, written and dropped from the page cache."""
    data = os.urandom(12 * MIB + 1234)
    path = tmp_path / "cold"
    path.write_bytes(data)
    evicted(path)
    return path, data


def _direct(path) -> int:
    fd = open_direct(os.fsencode(path))
    if fd is None:
        pytest.skip("this file system refuses O_DIRECT")
    return fd


def _needs_direct(path) -> None:
    os.close(_direct(path))


def _read_all(stream, sizes) -> bytes:
    parts = []
    for n in sizes:
        chunk = stream.read(n)
        if not chunk:
            break
        parts.append(chunk)
    assert stream.read(1000) == b"" and stream.read() == b""  # the end stays the end
    return b"".join(parts)


def test_a_cold_file_is_read_whole_from_an_unaligned_start_and_stays_out_of_the_page_cache(cold_file):
    path, data = cold_file
    stream = DirectStream(_direct(path), 5000, os.fsencode(path), block=MIB, depth=3, fast=0)
    sizes = [random.Random(1).choice((1, 4095, 4096, 70_000, MIB, 3 * MIB)) for _ in range(100_000)]
    try:
        assert _read_all(stream, sizes) == data[5000:]
        assert stream.direct
    finally:
        stream.close()
    with open(path, "rb") as f:
        assert cached(f.fileno(), 0, len(data), probes=16) is False  # read past it: no page of it came in


def test_a_slow_device_is_read_through_the_page_cache_after_the_probe(cold_file):
    path, data = cold_file
    stream = DirectStream(_direct(path), 0, os.fsencode(path), block=MIB, depth=2, probe=2 * MIB, fast=float("inf"))
    try:
        assert _read_all(stream, [MIB] * 100) == data
        assert not stream.direct
    finally:
        stream.close()
    with open(path, "rb") as f:  # the first 2 MiB (and the blocks read ahead then) past it, the rest through it
        assert cached(f.fileno(), 8 * MIB, len(data)) is True
        assert cached(f.fileno(), 0, MIB, probes=4) is False


def test_bytes_appended_after_opening_are_read_as_a_plain_read_would(cold_file):
    path, data = cold_file
    stream = DirectStream(_direct(path), 0, os.fsencode(path), block=MIB, depth=1)
    try:
        first = stream.read(MIB)
        with open(path, "ab") as f:
            f.write(b"appended\n")
        assert first + _read_all(stream, [MIB] * 100) == data + b"appended\n"
    finally:
        stream.close()


def test_a_file_system_without_direct_reads_is_answered_none(tmp_path):
    assert open_direct("/proc/version") is None  # procfs refuses O_DIRECT
    assert open_direct(str(tmp_path / "missing")) is None
    link = tmp_path / "link"
    link.symlink_to("/proc/version")
    assert open_direct(str(link)) is None  # and a symlink is never followed


def test_a_failed_read_reaches_the_reader_and_closing_never_waits(cold_file):
    path, _ = cold_file
    fd = _direct(path)
    try:
        with Prefetch(fd, [(0, MIB), (MIB, 3 * MIB)], MIB, 1) as reader:  # the second span is larger than a buffer
            assert reader.next()[1:] == (0, MIB)
            with pytest.raises(ValueError):
                reader.next()
            with pytest.raises(ValueError):  # and again: it never waits for a thread that is gone
                reader.next()
        reader = Prefetch(fd, ((i * MIB, MIB) for i in range(10)), MIB, 1)
        assert until(lambda: reader.read_bytes >= 2 * MIB)  # two buffers filled: the thread waits for a free one
        t = time.monotonic()
        reader.close()
        assert time.monotonic() - t < 1.0
        bad = Prefetch(-1, [(0, MIB)], MIB, 1)  # an OSError (EBADF) too
        with pytest.raises(OSError):
            bad.next()
        bad.close()
    finally:
        os.close(fd)


class _R:
    def __init__(self, offset, length):
        self.offset, self.length = offset, length


def test_window_spans_are_aligned_and_hold_each_region_they_name():
    rnd = random.Random(7)
    for _ in range(300):
        regions, off = [], rnd.randrange(0, 10_000)
        for _ in range(rnd.randrange(1, 60)):
            n = rnd.choice((1, 100, 5000, 70_000, 300_000, 2 * MIB))
            regions.append(_R(off, n))
            off += n + rnd.choice((0, 0, 1, 4096))
        window = rnd.choice((64 * 1024, MIB))
        spans, where = window_spans(regions, window)
        assert len(where) == len(regions)
        assert all(s % ALIGN == 0 and n % ALIGN == 0 and 0 < n <= window + 2 * ALIGN for s, n in spans)
        assert [s for s, _ in spans] == sorted(s for s, _ in spans)
        for r, w in zip(regions, where):
            if r.length > window:
                assert w == -1
            else:
                s, n = spans[w]
                assert s <= r.offset and r.offset + r.length <= s + n
        used = [w for w in where if w >= 0]
        assert used == sorted(used) and set(used) == set(range(len(spans)))  # in order, none read for nothing


def _regions(path, data, sizes):
    regions, off = [], 0
    for n in sizes:
        if off + n > len(data):
            break
        regions.append(FileRegion(os.fsencode(path), off, n, zlib.crc32(data[off:off + n]), head=3, tail=1,
                                  size=len(data), mtime=os.stat(path).st_mtime))
        off += n
    return regions


def test_a_cold_run_of_regions_reads_as_a_cached_one_and_past_the_page_cache(cold_file):
    path, data = cold_file
    _needs_direct(path)
    rnd = random.Random(3)
    regions = _regions(path, data, [rnd.choice((200, 50_000, 900_000, 5 * MIB)) for _ in range(200)])
    cold = list(FileRegion.read_run(regions))
    with open(path, "rb") as f:
        assert cached(f.fileno(), 0, len(data), probes=16) is False  # the windows came past the cache
        f.read()
    warm = list(FileRegion.read_run(regions))
    assert cold == warm == [data[r.offset + 3:r.offset + r.length - 1] for r in regions]


def test_a_cold_run_of_a_changed_file_fails_as_each_region_alone(cold_file):
    path, data = cold_file
    regions = _regions(path, data, [300_000] * 40)
    with open(path, "r+b") as f:  # one byte of the 6th region changed, the file cut inside the 30th
        f.seek(regions[5].offset + 10)
        f.write(bytes([data[regions[5].offset + 10] ^ 1]))
        f.truncate(regions[29].offset + 100)
    evicted(path)
    got = list(FileRegion.read_run(regions))
    alone = [r.read() for r in regions]
    assert got == alone
    assert [i for i, x in enumerate(got) if isinstance(x, ReadFailure)] == [5, *range(29, 40)]


def test_an_mbox_not_in_memory_is_scanned_past_the_page_cache_to_the_same_items(tmp_path, monkeypatch):
    import importers.mbox as mbox_module

    used = []

    class Recorded(mbox_module.DirectStream):
        def close(self):
            used.append(self.direct)
            super().close()

    monkeypatch.setattr(mbox_module, "DirectStream", Recorded)
    monkeypatch.setattr(mbox_module, "DIRECT_MIN", MIB)
    path = tmp_path / "box.mbox"
    with open(path, "wb") as f:  # ~12 MiB: several direct blocks
        for i in range(300):
            f.write(f"From a@b Sat Jan  1 00:00:{i % 60:02d} 2022\nFrom: a{i}@example.org\nSubject: m {i}\n\n".encode()
                    + (f"line {i} " * 10 + "\n").encode() * 500 + b"\n")
    _needs_direct(path)

    def items():
        got = list(MboxImporter(str(path)).scan(None, NullReporter()))
        return [(type(x).__name__, x.ref, getattr(x, "size", None), repr(getattr(x, "cursor", None))) for x in got]

    warm = items()
    assert used == []  # a cached file is scanned through the page cache
    evicted(path)
    assert items() == warm and len(warm) == 300
    assert used == [True]


@pytest.mark.parametrize("start", [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, MIB - 1, 12 * MIB, 12 * MIB + 1233,
                                   12 * MIB + 1234, 12 * MIB + 5000])
def test_any_start_up_to_and_past_the_end_reads_what_a_plain_read_would(cold_file, start):
    path, data = cold_file
    stream = DirectStream(_direct(path), start, os.fsencode(path), block=MIB, depth=2)
    try:
        assert _read_all(stream, [MIB // 3] * 200) == data[start:]
    finally:
        stream.close()


def test_without_a_thread_or_buffers_a_cold_run_and_a_cold_mbox_are_read_as_before(cold_file, tmp_path, monkeypatch):
    import importers.mbox as mbox_module
    import toolkit.file_region as file_region

    path, data = cold_file
    _needs_direct(path)

    def refused(*args, **kw):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(file_region, "Prefetch", refused)
    fds = len(os.listdir("/proc/self/fd"))
    regions = _regions(path, data, [100_000] * 50)
    assert list(FileRegion.read_run(regions)) == [data[r.offset + 3:r.offset + r.length - 1] for r in regions]
    assert len(os.listdir("/proc/self/fd")) == fds  # the direct descriptor was closed

    monkeypatch.setattr(mbox_module, "DirectStream", refused)
    monkeypatch.setattr(mbox_module, "DIRECT_MIN", MIB)
    with open(path, "rb") as f:
        assert mbox_module._direct_stream(f, os.fsencode(path), 0, len(data)) is None
        assert len(os.listdir("/proc/self/fd")) == fds + 1


def test_a_forked_child_never_shares_a_buffer_with_its_parent(cold_file):
    import toolkit.direct_read as direct_read

    path, data = cold_file
    stream = DirectStream(_direct(path), 0, os.fsencode(path), block=MIB, depth=1)
    assert stream.read(10) == data[:10]
    stream.close()  # its buffers are back in the pool
    pooled = [b for bufs in direct_read._POOL.values() for b in bufs]
    assert pooled
    pooled[0][:5] = b"22222"  # what the parent last wrote there
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: an empty pool, and its writes stay its own
        ok = not direct_read._POOL
        pooled[0][:5] = b"child"
        buf = direct_read.take_buffer(MIB)
        ok = ok and buf is not pooled[0] and buf is not pooled[-1]
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
    assert bytes(pooled[0][:5]) == b"22222"  # the child's write did not reach the parent's buffer
