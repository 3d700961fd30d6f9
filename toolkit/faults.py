"""Named kill points for crash tests (RELIABILITY §5).

``MAILARCHIVE_FAULT=point[:nth]`` makes the nth passage (default 1st) through
``hit("point")`` kill the process with SIGKILL. ``MAILARCHIVE_FAULT_SLOW=point:seconds``
makes every passage through that point sleep (a signal test then cannot miss a run that
ends too soon). Unset, ``hit`` costs two dict lookups.
"""
from __future__ import annotations

import os
import signal
import time

_counts: dict[str, int] = {}


def hit(point: str) -> None:
    slow = os.environ.get("MAILARCHIVE_FAULT_SLOW")
    if slow:
        name, _, seconds = slow.partition(":")
        if name == point:
            time.sleep(float(seconds or 0.1))
    spec = os.environ.get("MAILARCHIVE_FAULT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
