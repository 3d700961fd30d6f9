"""Commit groups (toolkit/ingest.py ``Ingest._due`` and ``_commit_next``, docs/architecture.md "Commit groups"):
the decided tasks whose packs are written are due together at COMMIT_GROUP tasks or COMMIT_ROWS messages, and a
group due holds no more than that; the ready tasks after it are the next group. The run's end (and a stop) still
commits whatever is left in one transaction."""
from __future__ import annotations

import threading
from collections import deque
from types import SimpleNamespace

import pytest

from toolkit import ingest
from toolkit.ingest import Ingest, _Decided
from toolkit.source import RunSummary


def _driver(sizes: list[int], later_out: bool = True) -> tuple[Ingest, list[list[int]]]:
    """An Ingest whose decided tasks have these message counts, every pack written; ``later_out``: a later task
    is still out (so no group is due only because nothing could join it)."""
    ing = Ingest.__new__(Ingest)
    ing._decided = deque()
    for n in sizes:
        t = _Decided([], None, b"", 0, RunSummary(run_id=1, source_uri="test:"))
        t.rows = SimpleNamespace(messages=[0] * n)
        ing._decided.append(t)
    ing._inflight = deque([([], None, b"")] if later_out else [])
    ing._stop = threading.Event()
    ing._executor, ing._given, ing.workers, ing.max_tasks = object(), None, 2, None
    committed: list[list[int]] = []
    ing._commit = lambda group: committed.append([len(t.rows.messages) for t in group])
    return ing, committed


def _groups(ing: Ingest, committed: list) -> list[list[int]]:
    while ing._commit_ready():
        pass
    return committed


def test_four_ready_tasks_of_40_kb_mails_are_one_group():
    ing, committed = _driver([1600] * 4)
    assert _groups(ing, committed) == [[1600] * 4]


def test_three_ready_tasks_below_both_bounds_wait_for_the_next():
    ing, committed = _driver([1600] * 3)
    assert _groups(ing, committed) == []
    ing._inflight.clear()  # nothing later is out to join them: due now
    assert _groups(ing, committed) == [[1600] * 3]


def test_two_tasks_of_tiny_mails_make_a_group_and_six_ready_are_three_groups():
    ing, committed = _driver([4096] * 6)
    assert _groups(ing, committed) == [[4096, 4096]] * 3  # never 24,576 rows in one commit (docs/reliability.md K8)


def test_eight_ready_small_tasks_are_two_groups_of_four():
    ing, committed = _driver([500] * 8)
    assert _groups(ing, committed) == [[500] * 4, [500] * 4]


def test_a_group_ends_with_the_task_that_reaches_the_row_bound():
    ing, committed = _driver([3000, 3000, 3000, 100, 100])
    assert _groups(ing, committed) == [[3000, 3000, 3000]]
    assert [len(t.rows.messages) for t in ing._decided] == [100, 100]  # not due yet: fewer than both bounds


@pytest.mark.parametrize("sizes", [[4096] * 6, [500] * 9])
def test_the_run_s_end_commits_all_that_is_left_together(sizes):
    ing, committed = _driver(sizes, later_out=False)
    assert ing._commit_next() is True
    assert committed == [sizes]
