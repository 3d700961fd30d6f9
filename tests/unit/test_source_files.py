"""Reading local source files in the pipeline (workers read EML/Maildir files themselves): the same
N1 guarantees as the importers' own reads — no symlink followed, no FIFO or device read."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import tempfile
import threading
from pathlib import Path

import pytest

from toolkit.source import read_regular_file, will_read


def test_reads_a_regular_file_exactly(tmp_path):
    p = tmp_path / "m.eml"
    p.write_bytes(b"Subject: x\r\n\r\nbody\x00\xff")
    assert read_regular_file(os.fsencode(p)) == b"Subject: x\r\n\r\nbody\x00\xff"


def test_a_file_of_the_size_fstat_gave_is_read_in_one_system_call(tmp_path, monkeypatch):
    """Asking for one byte more than the size and getting the size is the end of the file: no second read."""
    p = tmp_path / "m.eml"
    p.write_bytes(b"Subject: x\r\n\r\n" + b"b" * 70_000)
    calls = []
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: calls.append(n) or real(fd, n))
    assert read_regular_file(os.fsencode(p)) == p.read_bytes()
    assert len(calls) == 1


@pytest.mark.parametrize("change", [+5_000, -5_000])
def test_a_file_that_grew_or_shrank_after_its_fstat_is_read_to_its_end(tmp_path, monkeypatch, change):
    """The file changes between the fstat and the read (appended to, or cut): what is read is the whole
    file as it is at the read, never the first fstat-size + 1 bytes of a grown one."""
    p = tmp_path / "m.eml"
    content = b"Subject: x\r\n\r\n" + bytes(range(256)) * 100
    p.write_bytes(content)
    real_fstat = os.fstat

    def fstat_then_change(fd):
        st = real_fstat(fd)
        p.write_bytes(content + b"z" * change if change > 0 else content[:change])
        return st
    monkeypatch.setattr(os, "fstat", fstat_then_change)
    assert read_regular_file(os.fsencode(p)) == p.read_bytes()
    assert len(p.read_bytes()) == len(content) + change


def test_a_symlink_swapped_in_is_not_followed(tmp_path):
    secret = tmp_path / "outside"
    secret.write_bytes(b"not yours")
    link = tmp_path / "m.eml"
    link.symlink_to(secret)
    with pytest.raises(OSError) as exc:
        read_regular_file(os.fsencode(link))
    assert exc.value.errno == errno.ELOOP


def test_a_fifo_swapped_in_is_never_read(tmp_path):
    fifo = tmp_path / "m.eml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no longer a regular file"):
        read_regular_file(os.fsencode(fifo))     # would block forever if it were opened for a read


def test_a_vanished_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_regular_file(os.fsencode(tmp_path / "gone"))


def test_the_read_hint_never_blocks_and_never_raises(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    plain = tmp_path / "plain"
    plain.write_bytes(b"x" * 10000)
    done = threading.Event()

    def hint_all():
        for p in (fifo, link, tmp_path / "missing", plain):
            will_read(os.fsencode(p))
        done.set()

    threading.Thread(target=hint_all, daemon=True).start()
    assert done.wait(5), "will_read blocked (a FIFO opened without O_NONBLOCK?)"


def _resident_pages(fd: int, size: int) -> int:
    """How many of the file's pages are in the page cache (mincore over a mapping that touches none of them; a
    read that refuses to wait would start the kernel's read-ahead and bring them back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        if libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(v & 1 for v in vec)
    finally:
        libc.munmap(addr, size)


def _evict(path) -> bool:
    """Drop a written file's pages from the page cache; True when the kernel did (not on every file system)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return _resident_pages(fd, os.fstat(fd).st_size) == 0
    finally:
        os.close(fd)


@pytest.fixture
def disk_dir(tmp_path):
    """A directory whose files' pages the kernel can drop: the test's tmp_path, or (where that is a tmpfs,
    which keeps them) a directory beside the tests in the checkout."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x" * 8192)
    if _evict(probe):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as d:
        yield Path(d)


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="no read that can refuse to wait on this system")
def test_the_read_hint_is_given_only_when_a_file_is_not_in_memory(disk_dir):
    """Files read a moment ago get no hint (its system calls would buy nothing); a chunk where one of the files
    looked at is not cached gets the hint for all, and a FIFO or symlink among them is passed over."""
    tmp_path = disk_dir
    files = []
    for i in range(40):
        p = tmp_path / f"{i:02d}.eml"
        p.write_bytes(b"Subject: x\r\n\r\n" + bytes([i]) * 20000)
        files.append(os.fsencode(p))
    for f in files:
        read_regular_file(f)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "00.eml")
    odd = [os.fsencode(fifo), os.fsencode(link), os.fsencode(tmp_path / "missing")]
    assert will_read(*odd, *files) is False
    assert will_read() is False
    if not _evict(files[17]):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tmp_path}: the kernel keeps this file system's pages (tmpfs?): CI must run this test")
        pytest.skip("this file system keeps the file's pages (tmpfs?)")
    assert will_read(*odd, *files) is True  # files[17] is the third looked at (every tenth of the 43)
