"""Named kill points for crash tests (docs/reliability.md).

``ACTIVE["kill"] = "point[:nth]"`` makes the nth passage (default 1st) through
``hit("point")`` kill the process with SIGKILL. ``ACTIVE["slow"] = "point:seconds"``
makes every passage through that point sleep (a signal test then cannot miss a run that
ends too soon). Unset, ``hit`` costs two dict lookups.

The core reads no environment: the command line sets these from ``MAILARCHIVE_FAULT`` and
``MAILARCHIVE_FAULT_SLOW`` (``toolkit/cli/environment.py``) with :func:`configure`, and a pool
that spawns workers hands ``dict(ACTIVE)`` to each of them (``configure(**settings)``), with
``kill_also`` set to the driver's pid: a kill point reached in a worker (which writes packs) then kills
the driver first, so a test sees the whole import die at that point, as in a crash. The pool also
hands its workers the driver's :func:`shared_count`: "the nth passage" then counts the passages of
the driver and all its workers together (and the import runs one pack task at a time while a kill
point is set, so the nth passage is the same one in every run).
"""
from __future__ import annotations

import os
import signal
import time

#: The fault points in force in this process: ``kill`` and ``slow`` as described above, or None.
ACTIVE: dict[str, str | int | None] = {"kill": None, "slow": None, "kill_also": None}
_counts: dict[str, int] = {}
_shared = None  # a multiprocessing Value counting the kill point's passages in a driver and its workers


def shared_count(ctx):
    """A counter of the kill point's passages shared with worker processes of ``ctx`` (started from this
    process's count so far); this process counts there too from now on. None without a kill point."""
    global _shared
    if not ACTIVE["kill"]:
        return None
    if _shared is None:
        _shared = ctx.Value("q", _counts.get(str(ACTIVE["kill"]).partition(":")[0], 0))
    return _shared


def share(counter) -> None:
    """Count the kill point's passages in ``counter`` (a worker: its driver's :func:`shared_count`)."""
    global _shared
    _shared = counter


def configure(kill: str | None = None, slow: str | None = None, kill_also: int | None = None) -> None:
    """Set (or, with None, clear) the kill point and the slow point of this process, and the process
    killed with it (``kill_also``: a worker's driver). A counter shared before is dropped."""
    global _shared
    _shared = None
    ACTIVE["kill"] = kill or None
    ACTIVE["slow"] = slow or None
    ACTIVE["kill_also"] = kill_also or None


def hit(point: str) -> None:
    slow = ACTIVE["slow"]
    if slow:
        name, _, seconds = slow.partition(":")
        if name == point:
            time.sleep(float(seconds or 0.1))
    spec = ACTIVE["kill"]
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    if _shared is not None:
        with _shared.get_lock():
            _shared.value += 1
            count = _shared.value
    else:
        _counts[point] = count = _counts.get(point, 0) + 1
    if count >= int(nth or 1):
        if ACTIVE["kill_also"]:
            try:
                os.kill(int(ACTIVE["kill_also"]), signal.SIGKILL)
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)
