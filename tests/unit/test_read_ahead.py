"""Reading a local file ahead of its scan (toolkit/read_ahead.py): it starts only for a file not in the page cache,
stays at most its distance ahead of the scan's position, reads to the end as the scan goes, stops when closed; and
import mbox's scan of such a file gives the same items as of a cached one."""
from __future__ import annotations

import os
import time

from importers.mbox import MboxImporter
from toolkit.read_ahead import ReadAhead, cached
from toolkit.reporter import NullReporter

from tests.page_cache import evicted, until

MIB = 1 << 20


def test_a_file_not_in_memory_is_read_ahead_of_the_scan_and_no_further(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(os.urandom(8 * MIB))
    evicted(path)
    with open(path, "rb") as f:
        fd = f.fileno()
        with ReadAhead(fd, 0, 8 * MIB, ahead=MIB, step=256 * 1024) as ahead:
            assert ahead.started
            assert until(lambda: ahead.done >= MIB)
            time.sleep(0.05)
            assert ahead.done <= MIB + 256 * 1024          # waits for the scan: no more than its distance ahead
            assert cached(fd, 0, MIB) is True and cached(fd, 4 * MIB, 8 * MIB) is False
            ahead.position = 8 * MIB                        # the scan went on to the end
            assert until(lambda: ahead.done == 8 * MIB)
        assert cached(fd, 0, 8 * MIB) is True
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0            # the caller's file position never moved


def test_a_cached_file_is_not_read_again(tmp_path):
    path = tmp_path / "warm"
    path.write_bytes(os.urandom(8 * MIB))
    with open(path, "rb") as f:
        f.read()
        ahead = ReadAhead(f.fileno(), 0, 8 * MIB)
        assert not ahead.started
        ahead.close()


def test_closing_ends_a_thread_that_waits_for_the_scan(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(os.urandom(8 * MIB))
    evicted(path)
    with open(path, "rb") as f:
        ahead = ReadAhead(f.fileno(), 0, 8 * MIB, ahead=MIB, step=256 * 1024)
        assert ahead.started and until(lambda: ahead.done >= MIB)
        t = time.monotonic()
        ahead.close()
        assert time.monotonic() - t < 1.0 and not ahead.started


def test_an_mbox_not_in_memory_gives_the_same_items(tmp_path, monkeypatch):
    import importers.mbox as mbox_module

    started = []

    class Recorded(ReadAhead):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            started.append(self.started)

    monkeypatch.setattr(mbox_module, "ReadAhead", Recorded)
    path = tmp_path / "box.mbox"
    with open(path, "wb") as f:  # ~12 MiB: more than a few read steps
        for i in range(300):
            f.write(f"From a@b Sat Jan  1 00:00:{i % 60:02d} 2022\nFrom: a{i}@example.org\nSubject: m {i}\n\n".encode()
                    + (f"line {i} " * 10 + "\n").encode() * 500 + b"\n")

    def items():
        got = list(MboxImporter(str(path)).scan(None, NullReporter()))
        return [(type(x).__name__, x.ref, getattr(x, "size", None), repr(getattr(x, "cursor", None))) for x in got]

    warm = items()
    evicted(path)
    assert items() == warm and len(warm) == 300
    assert started == [False, True]  # the cached file was scanned as before, the other one read ahead
