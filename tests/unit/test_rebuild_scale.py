"""``db rebuild`` at scale (docs/reliability.md K8): the renumbering into stamp order is planned as hash joins,
the manifests' leaves rank at their first place, and the blobs already found are held as prefixes with a hit
confirmed exactly in the catalog.

A stamped catalog of a million mails did not finish its rebuild in ten minutes: the renumbering joined messages
with the leaves on ``blob_id = blob_id AND (src = 'm' OR batch_id = own_batch)``, which DuckDB plans as a nested
loop (200,000 rows: 287 s).
"""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from media_tools.rebuild import _SeenBlobs
from toolkit.catalog import rebuild_rows

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def _blob(i: int) -> str:
    return hashlib.sha256(f"mail {i}".encode()).hexdigest()


def _add_messages(con, blobs: list[str]) -> None:
    con.executemany(
        'INSERT INTO messages (msg_id, blob_id, dedup_key, pack_id, "offset", length, size, csize, spam, id_conflict, '
        "archived_at) VALUES (?, ?, ?, 'p', 0, 1, 1, 1, false, false, ?)",
        [[i + 1, b, b, T0] for i, b in enumerate(blobs)])


class _Explaining:
    """A connection that explains every query it creates a table from, before running it."""

    def __init__(self, con):
        self.con, self.plans = con, []

    def execute(self, sql, *args):
        head = "CREATE TEMP TABLE"
        if sql.lstrip().startswith(head) and " AS" in sql:
            select = sql.split(" AS", 1)[1]
            self.plans.append(" ".join(str(r[1]) for r in self.con.execute("EXPLAIN " + select).fetchall()))
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_the_renumbering_is_planned_without_a_nested_loop_and_ranks_each_leaf_at_its_first_place(catalog):
    blobs = [_blob(i) for i in range(40)]
    # the catalog holds them in pack order (reversed here); batch 1 is leaves 10..19, batch 2 leaves 0..9 and,
    # again, leaf 15 (a blob that is a leaf of two batches ranks where it was first stamped: batch 1)
    batch1 = blobs[10:20]
    batch2 = blobs[0:10] + [blobs[15]]
    rank = rebuild_rows.leaf_rank_table([(1, b"".join(bytes.fromhex(b) for b in batch1)),
                                         (2, b"".join(bytes.fromhex(b) for b in batch2))])
    assert rank.num_rows == 21
    with catalog.writing() as con:
        _add_messages(con, list(reversed(blobs)))
        spy = _Explaining(con)
        rebuild_rows.renumber_by_leaf_rank(spy, lambda: rank)
        got = con.execute("SELECT msg_id, blob_id, batch_id FROM messages ORDER BY msg_id").fetchall()
    assert spy.plans, "the renumbering creates its id map from a query"
    for plan in spy.plans:
        assert "NL_JOIN" not in plan and "NESTED_LOOP" not in plan, plan
    expected = ([(b, 1) for b in batch1] + [(b, 2) for b in blobs[0:10]]
                + [(b, None) for b in reversed(blobs[20:])])  # the rest in their old order
    assert [(b, batch) for _, b, batch in got] == expected
    assert [m for m, _, _ in got] == list(range(1, 41))


def test_a_blob_sharing_the_prefix_of_one_found_is_not_taken_for_it(catalog):
    found = _blob(1)
    twin = found[:15] + ("0" if found[15] != "0" else "1") + found[16:]  # the same 60-bit prefix, another blob
    with catalog.writing() as con:
        _add_messages(con, [found])
    seen = _SeenBlobs(catalog)
    seen.add_all([found])
    assert found in seen
    assert twin not in seen
    assert _blob(2) not in seen


def test_a_rebuild_step_the_memory_limit_refuses_is_made_again_without_it(catalog):
    from types import SimpleNamespace

    from media_tools import rebuild

    def heavy(con):
        con.execute("CREATE TEMP TABLE heavy AS SELECT i, repeat('x', 300) || i AS s FROM range(200000) t(i) "
                    "ORDER BY s DESC")
        return con.execute("SELECT count(*), min(s) FROM heavy").fetchone()

    archive = SimpleNamespace(catalog=catalog)
    catalog.use_memory_limit(1 << 20)
    with pytest.raises(Exception):  # the step alone does not fit in 1 MiB
        with catalog.writing() as con:
            heavy(con)
    assert rebuild._write(archive, heavy, 1 << 20) == (200000, "x" * 300 + "0")
    assert catalog.memory_limit == rebuild.REBUILD_MEMORY_LIMIT  # the rebuild's own limit again for the next step


def test_a_refused_step_is_made_again_under_twice_then_four_times_the_limit_before_none(catalog):
    """Without a limit the renumbering of a stamped million held 1,050 MB more (a 64 MB limit refused it): the
    steps between keep a step a little over its limit near it. The step runs on the threads asked for, and the
    catalog's limit and threads are put back whatever happened."""
    import duckdb
    from types import SimpleNamespace

    from media_tools import rebuild

    def refusing(times):
        seen = []

        def step(con):
            seen.append(con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone())
            if len(seen) <= times:
                raise duckdb.OutOfMemoryException("could not allocate block (test)")
            return len(seen)
        return step, seen

    archive = SimpleNamespace(catalog=catalog)
    catalog.use_threads(2)
    step, seen = refusing(1)
    assert rebuild._write(archive, step, 8 << 20, threads=1) == 2
    assert seen == [("8.0 MiB", 1), ("16.0 MiB", 1)]
    step, seen = refusing(3)
    assert rebuild._write(archive, step, 8 << 20) == 4
    assert [s[0] for s in seen[:3]] == ["8.0 MiB", "16.0 MiB", "32.0 MiB"] and seen[3][0].endswith("GiB")
    step, seen = refusing(4)
    with pytest.raises(duckdb.OutOfMemoryException):
        rebuild._write(archive, step, 8 << 20, threads=1)
    assert len(seen) == 4
    assert catalog.memory_limit == rebuild.REBUILD_MEMORY_LIMIT and catalog.threads == 2


def test_the_found_prefixes_spill_into_a_sorted_array_and_are_still_found(catalog, monkeypatch):
    monkeypatch.setattr(_SeenBlobs, "SPILL", 7)
    blobs = [_blob(i) for i in range(50)]
    with catalog.writing() as con:
        _add_messages(con, blobs)
    seen = _SeenBlobs(catalog)
    for i in range(0, 50, 5):
        seen.add_all(blobs[i:i + 5])
    assert len(seen._sorted) >= 35 and list(seen._sorted) == sorted(seen._sorted)
    assert all(b in seen for b in blobs)
    assert not any(_blob(i) in seen for i in range(50, 80))
