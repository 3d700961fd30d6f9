"""A test kill point counts the passages of a driver and its worker processes together (toolkit/faults.py):
the nth passage is the nth in the whole import, whichever process reaches it."""
from __future__ import annotations

import multiprocessing
import signal

from toolkit import faults


def _worker(counter) -> None:
    faults.configure(kill="unit.point:3")
    faults.share(counter)
    faults.hit("unit.point")  # the 2nd passage overall: no kill
    faults.hit("unit.point")  # the 3rd: this process dies here


def test_the_nth_passage_counts_the_driver_and_its_workers_together():
    ctx = multiprocessing.get_context("spawn")
    faults.configure(kill="unit.point:3")
    try:
        faults.hit("unit.point")  # the driver's 1st passage, before any worker exists
        counter = faults.shared_count(ctx)
        assert counter is not None and counter.value == 1
        p = ctx.Process(target=_worker, args=(counter,))
        p.start()
        p.join(60)
        assert p.exitcode == -signal.SIGKILL and counter.value == 3
    finally:
        faults.configure()
    assert faults.shared_count(ctx) is None  # no kill point: nothing shared
