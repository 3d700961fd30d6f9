"""Keep the archive key and passphrases out of core dumps (docs/reliability.md G7).

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
