"""Early writeback of a local file being written (Linux ``sync_file_range``): a hint, never durability.

A medium's file (a pack, a backup part, a copy) is fsynced before it is published (docs/formats.md). Until that
fsync the kernel holds what was written in the page cache and, on an otherwise idle machine, writes nothing of it
back for up to ~30 s (``vm.dirty_expire_centisecs``): the whole file then went to the disk inside the fsync, with
the writer blocked for it (a 64 MiB pack: ~30 ms here, ~20 ms of a worker's task; docs/architecture.md "Early
writeback"). Asking the kernel to start writing each :data:`WRITEBACK_STEP` bytes as they are written lets the disk
work while the process goes on; the fsync then waits for little. ``SYNC_FILE_RANGE_WRITE`` alone starts the
writeback and does not wait for it, and it neither makes anything durable nor consumes a writeback error: the
fsync still reports one (the kernel's errseq check is done by fsync and by the WAIT flags, not used here).
"""
from __future__ import annotations

import sys

#: start the writeback once this many bytes were written since the last start
WRITEBACK_STEP = 8 << 20

_SYNC_FILE_RANGE_WRITE = 2
_CALL: list = []  # [the libc function, or None where there is none], looked up once per process


def _sync_file_range():
    if not _CALL:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = None
        _CALL.append(fn)
    return _CALL[0]


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` from ``offset`` to the disk, without waiting.
    False where it cannot be asked (another system, or the file system refused: a hint only, nothing is raised)."""
    fn = _sync_file_range()
    return fn is not None and fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0
