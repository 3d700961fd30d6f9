"""Process-wide settings the command line makes first: no core dumps (docs/reliability.md G7), few malloc arenas (K8).

A process that has the archive key in memory would write it into a core file
if it crashed (or was sent SIGABRT/SIGQUIT) under ``ulimit -c unlimited``, or
hand it to a crash collector when ``kernel.core_pattern`` is a pipe. The
command line calls :func:`forbid_core_dumps` first thing, and every worker
process it starts calls it again in its initializer (a new program started by
spawn or forkserver is dumpable again; the limit is inherited).

* ``RLIMIT_CORE`` soft and hard 0: no core file, in this process and in every
  child it starts (the hard limit cannot be raised again without privilege).
* ``PR_SET_DUMPABLE`` 0: the kernel writes no dump at all, not even to a
  ``core_pattern`` pipe (which ignores ``RLIMIT_CORE``), and other processes
  of the same user cannot attach to this one or read its memory.
"""
from __future__ import annotations

import resource
import sys

_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1


def forbid_core_dumps() -> bool:
    """Switch core dumps off for this process; True when both measures took (Linux), else False."""
    ok = True
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        ok = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            ok = False
    except (OSError, AttributeError):
        ok = False
    return ok


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when the thread that started it ends (``PR_SET_PDEATHSIG``): a child
    stuck in C code never outlives a killed parent. True when set (Linux), else False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import signal

        return ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


_M_ARENA_MAX = -8


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's malloc use at most ``arenas`` arenas in this process (as ``MALLOC_ARENA_MAX`` would).

    By default every thread that allocates may get its own arena (up to 8 per core), and a long
    import's catalog, pool and progress threads then leave memory spread over many of them that
    is never given back: measured, the main process of a 100,000-mail import grew by 1.1 KB per
    mail with the default and by 0.3 KB with two arenas (bench/RESULTS.md "Tiny mails (K8)").
    Call it before threads start. False where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas) == 1
    except (OSError, AttributeError):
        return False


#: glibc's ``mallopt`` parameters (malloc.h) and the values an import's main process sets (see :func:`steady_large_buffers`)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
IMPORT_MMAP_THRESHOLD = 8 << 20
IMPORT_TRIM_THRESHOLD = 16 << 20


def steady_large_buffers() -> bool:
    """Let an import's main process reuse the memory of its large buffers instead of asking the kernel again for each.

    An mbox is read in blocks of 4 MiB (importers/mbox.py ``LOCAL_BLOCK``), each a new bytes object freed once
    scanned. With glibc's defaults the heap's top is handed back once twice the (moving) mapping threshold is free,
    so most blocks were faulted in afresh: 55,000 minor page faults and 0.36 CPU-s for the scan of an 810 MB mbox,
    against none and 0.30 CPU-s with a block up to 8 MiB from the heap and up to 16 MiB of free memory kept at its
    top (bench/RESULTS.md "Issue 15, ninth session"). What a buffer over 8 MiB gets is still mapped and unmapped on
    its own, as with the defaults, whose moving threshold could reach 32 MiB. (The workers keep their own values:
    toolkit/worker_entry.py ``steady_malloc``.) False where there is no glibc.
    """
    return malloc_thresholds(IMPORT_MMAP_THRESHOLD, IMPORT_TRIM_THRESHOLD)


def malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Fix glibc's thresholds for this process: a buffer up to ``mmap_threshold`` bytes comes from the heap (a larger
    one is mapped and unmapped on its own), and up to ``trim_threshold`` bytes of free memory at the heap's top are
    kept. False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1)
    except (OSError, AttributeError):
        return False


def give_back_freed_memory() -> bool:
    """Return the free pages of glibc's heaps to the system (``malloc_trim(0)``).

    A paged read of a large catalog (``export metadata``, ``db backup``) frees each page's DuckDB results before
    the next one, but glibc keeps the freed chunks spread through its heap and the resident set grew by ~4 MB a
    page of 20,000 mails, to 460 MB for a million; trimmed after each page it stays flat (bench/RESULTS.md
    "Memory at a million mails"). False where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim(0) == 1
    except (OSError, AttributeError):
        return False
