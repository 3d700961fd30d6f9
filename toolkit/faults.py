"""Named kill points for crash tests (RELIABILITY §5).

``MAILARCHIVE_FAULT=point[:nth]`` makes the nth passage (default 1st) through
``hit("point")`` kill the process with SIGKILL. Unset, ``hit`` costs a dict lookup.
"""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def hit(point: str) -> None:
    spec = os.environ.get("MAILARCHIVE_FAULT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
