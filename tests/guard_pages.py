"""Memory that ends at an inaccessible page, for tests of compiled scans: a read one byte past a buffer's end
(or before its start) kills the process instead of passing unseen.

    with guarded(pages=2) as (before, after):
        before[len(before) - n:] = data[:n]   # n bytes ending right before the PROT_NONE page
        after[:n] = data[len(data) - n:]      # n bytes starting right after it

``before`` and ``after`` are writable byte views of ``pages`` pages each, on either side of one PROT_NONE page.
Views taken of them must be released (``del``) before the ``with`` block ends. Linux (mmap through libc).
"""
from __future__ import annotations

import contextlib
import ctypes
from typing import Iterator

PAGE = 4096


@contextlib.contextmanager
def guarded(pages: int) -> Iterator[tuple[memoryview, memoryview]]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    total = PAGE * (2 * pages + 1)
    addr = libc.mmap(None, total, 3, 0x22, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
    assert addr not in (None, ctypes.c_void_p(-1).value)
    try:
        assert libc.mprotect(addr + PAGE * pages, PAGE, 0) == 0  # PROT_NONE
        before = memoryview((ctypes.c_char * (PAGE * pages)).from_address(addr)).cast("B")
        after = memoryview((ctypes.c_char * (PAGE * pages)).from_address(addr + PAGE * (pages + 1))).cast("B")
        try:
            yield before, after
        finally:
            before.release()
            after.release()
    finally:
        libc.munmap(addr, total)
