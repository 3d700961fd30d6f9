"""A pack task reads a run of mbox regions together (``FileRegion.read_run`` through ``read_jobs``, issue 15): one
open of the file and windows of ``RUN_WINDOW`` bytes instead of an open and a ``pread`` per message. Each region
must come back exactly as ``FileRegion.read`` gives it alone: the same bytes, and for a region the file no longer
holds as scanned (changed, truncated, gone, not a regular file) the same failure and message
(docs/reliability.md A5, toolkit/file_region.py)."""
from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import file_region
from toolkit.file_region import FileRegion
from toolkit.prepare import read_job
from toolkit.remote_jobs import read_jobs


def _regions(path: bytes, data: bytes, cuts: list[int], unquote: bool, wrong: set[int]) -> list[FileRegion]:
    """Regions tiling ``data`` at ``cuts`` (a From_-like head and a one-byte tail where they fit); the CRC-32 of
    the regions in ``wrong`` is off by one (the file changed after the scan)."""
    bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    out = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        head = min(5, b - a)
        tail = 1 if b - a - head >= 1 else 0
        crc = zlib.crc32(data[a:b]) + (1 if i in wrong else 0)
        out.append(FileRegion(path, a, b - a, crc & 0xFFFFFFFF, head, tail, unquote, len(data), 0.0))
    return out


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=3000).map(lambda b: b.replace(b"Q", b"\n>From ")),
       cuts=st.lists(st.integers(0, 4000), max_size=40), window=st.sampled_from([7, 64, 500, 1 << 20]),
       unquote=st.booleans(), wrong=st.sets(st.integers(0, 40), max_size=4), order=st.randoms(use_true_random=False),
       shuffle=st.booleans(), truncate=st.none() | st.integers(0, 3000))
def test_a_run_reads_what_each_region_reads_alone(tmp_path, monkeypatch, data, cuts, window, unquote, wrong, order,
                                                  shuffle, truncate):
    path = tmp_path / "box.mbox"
    path.write_bytes(data)
    regions = _regions(os.fsencode(path), data, cuts, unquote, wrong)
    if shuffle:  # out of order: a region before the window is read again
        order.shuffle(regions)
    if truncate is not None:  # the file cut after the scan: the regions past the cut fail, as alone
        path.write_bytes(data[:truncate])
    monkeypatch.setattr(file_region, "RUN_WINDOW", window)
    alone = [r.read() for r in regions]
    assert list(FileRegion.read_run(regions)) == alone
    assert list(read_jobs(regions)) == alone


def test_a_run_of_a_missing_file_or_a_directory_fails_as_each_region_alone(tmp_path):
    regions = [FileRegion(os.fsencode(tmp_path / "gone.mbox"), i * 10, 10, 0) for i in range(3)]
    alone = [r.read() for r in regions]
    assert all(isinstance(a, file_region.ReadFailure) for a in alone)
    assert list(read_jobs(regions)) == alone
    (tmp_path / "dir.mbox").mkdir()
    regions = [FileRegion(os.fsencode(tmp_path / "dir.mbox"), i * 10, 10, 0) for i in range(3)]
    assert list(read_jobs(regions)) == [r.read() for r in regions]


def test_read_jobs_takes_runs_of_one_file_only(tmp_path):
    """Consecutive regions of the same file form a run; bytes, another file's regions and single regions in between
    are read as before, and the results keep the jobs' order."""
    a, b = tmp_path / "a.mbox", tmp_path / "b.mbox"
    a.write_bytes(b"".join(b"From x\nmail a%d\n\n" % i for i in range(6)))
    b.write_bytes(b"From y\nmail b\n\n")

    def region(p, i, n=16):
        raw = p.read_bytes()[i * n:(i + 1) * n]
        return FileRegion(os.fsencode(p), i * n, len(raw), zlib.crc32(raw), 7, 1)

    jobs = [region(a, 0), region(a, 1), b"bytes", region(a, 2), region(b, 0), region(a, 3), region(a, 4), region(a, 5)]
    assert list(read_jobs(jobs)) == [read_job(j) for j in jobs] == [
        b"mail a0\n", b"mail a1\n", b"bytes", b"mail a2\n", b"mail b\n", b"mail a3\n", b"mail a4\n", b"mail a5\n"]


def test_a_region_larger_than_the_window_is_read_alone(tmp_path, monkeypatch):
    data = b"From x\n" + b"y" * 5000 + b"\n\n" + b"From x\nshort\n\n"
    path = tmp_path / "box.mbox"
    path.write_bytes(data)
    cut = data.index(b"From x\nshort")
    regions = [FileRegion(os.fsencode(path), 0, cut, zlib.crc32(data[:cut]), 7, 1),
               FileRegion(os.fsencode(path), cut, len(data) - cut, zlib.crc32(data[cut:]), 7, 1)]
    monkeypatch.setattr(file_region, "RUN_WINDOW", 100)
    assert list(read_jobs(regions)) == [b"y" * 5000 + b"\n", b"short\n"]


@pytest.mark.parametrize("unquote", [False, True])
def test_the_mboxrd_unquoting_of_a_run_is_that_of_a_region(tmp_path, unquote):
    data = b"From x\nSubject: a\n\n>From here\n>>From there\n\nFrom x\nSubject: b\n\nplain\n"
    path = tmp_path / "box.mbox"
    path.write_bytes(data)
    cut = data.index(b"From x\nSubject: b")
    regions = [FileRegion(os.fsencode(path), 0, cut, zlib.crc32(data[:cut]), 7, 1, unquote),
               FileRegion(os.fsencode(path), cut, len(data) - cut, zlib.crc32(data[cut:]), 7, 0, unquote)]
    got = list(read_jobs(regions))
    assert got == [r.read() for r in regions]
    assert got[0] == (b"Subject: a\n\nFrom here\n>From there\n" if unquote else b"Subject: a\n\n>From here\n>>From there\n")
