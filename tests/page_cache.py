"""Helpers for tests of reads that depend on the page cache: drop a file's pages, wait for a condition."""
from __future__ import annotations

import os
import time

import pytest

from toolkit.read_ahead import cached


def evicted(path) -> None:
    """Write ``path`` to the disk and drop its pages from the page cache (or skip where that cannot be done)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        if cached(f.fileno(), 0, os.fstat(f.fileno()).st_size) is not False:
            pytest.skip("this file system keeps the file in memory (or cannot tell): nothing to read past it")


def until(check, timeout=10.0) -> bool:
    """Wait until ``check()`` is true; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
