"""Helpers of tests about processes a command started."""
from __future__ import annotations

import os


def assert_gone(pids: list[int]) -> None:
    """Every process of ``pids`` has ended: none runs (a zombie not yet reaped by init may remain)."""
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split(") ")[1][0] == "Z", f"worker {pid} still runs"
