"""The driver's cheaper steps of this round give exactly what the steps they replaced gave (issue 15, driver
CPU; branch driver-sys). Each replaced step is compared with its former code, kept here as the reference:
pointing a task's message rows at their records (``toolkit.ingest._point_rows``: whole columns when every row
is in the task's pack), cutting the source into chunks (``toolkit.ingest._take_ended``: the chunk's bytes
counted once, not again after it was cut), the scan's progress count (``importers.walk.iter_after``: in
steps, the same total) and the lookups a fresh archive's run never needs (``KnownKeys.prefixes_empty``).
"""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from importers.walk import FileEntry, iter_after
from toolkit.ingest import RAW_CHUNK_BYTES, _point_rows, _take_ended
from toolkit.ingest_writer import MESSAGE_COLUMNS, Columns
from toolkit.known_keys import KnownKeys
from toolkit.source import SourceMail, SourceSkip


def _old_point_rows(messages, old, new, entries) -> None:
    """_point_rows before: row by row."""
    for i, (blob, pack) in enumerate(zip(messages["blob_id"], messages["pack_id"])):
        if pack == old:
            e = entries[blob]
            messages["pack_id"][i], messages["offset"][i], messages["length"][i] = new, e[0], e[1]
            messages["size"][i], messages["csize"][i] = e[2], e[3]


_ROW = st.tuples(st.integers(0, 30), st.sampled_from(["aa", "aa", "aa", "bb"]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_ROW, max_size=30), new=st.sampled_from(["aa", "cc"]),
       entries=st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**31), st.integers(0, 2**31),
                                  st.integers(0, 2**31)), min_size=31, max_size=31))
def test_point_rows_gives_what_the_row_loop_gave(rows, new, entries):
    by_blob = {f"{b:064x}": e for b, e in enumerate(entries)}
    cols = Columns(MESSAGE_COLUMNS)
    for blob, pack in rows:
        cols.add(**{name: None for name in MESSAGE_COLUMNS} | {"blob_id": f"{blob:064x}", "pack_id": pack,
                                                                "offset": -1, "length": -2, "size": -3, "csize": -4})
    before = copy.deepcopy(cols)
    lists = {name: cols[name] for name in MESSAGE_COLUMNS}
    _point_rows(cols, "aa", new, by_blob)
    _old_point_rows(before, "aa", new, by_blob)
    assert cols.lists == before.lists
    assert all(cols[name] is lists[name] for name in MESSAGE_COLUMNS)  # the same lists, changed in place


def _old_take(it, n, max_bytes, max_remote):
    out = []
    size = raw = remote = 0
    for item in it:
        out.append(item)
        if isinstance(item, SourceMail):
            size += item.length
            raw += item.length if item.raw is not None else 0
            remote += item.length if getattr(item.job, "batch_key", None) is not None else 0
        if len(out) >= n or size >= max_bytes or raw >= RAW_CHUNK_BYTES or remote >= max_remote:
            break
    return out


def _old_take_ended(it, n, max_bytes, max_remote):
    """_take_ended before: _take, then the chunk measured again."""
    out = _old_take(it, n, max_bytes, max_remote)
    size = raw = remote = 0
    for item in out:
        if isinstance(item, SourceMail):
            size += item.length
            raw += item.length if item.raw is not None else 0
            remote += item.length if getattr(item.job, "batch_key", None) is not None else 0
    full = len(out) >= n or size >= max_bytes or raw >= RAW_CHUNK_BYTES or remote >= max_remote
    return out, not full


class _Remote:
    batch_key = "INBOX"


class _Region:  # a job without a batch key (a FileRegion)
    pass


def _item(kind: str, size: int):
    if kind == "skip":
        return SourceSkip("s", "not mail")
    if kind == "raw":
        return SourceMail(b"x" * size, "r")
    if kind == "path":
        return SourceMail(None, "p", path=b"/x", size=size)
    return SourceMail(None, "j", size=size, job=_Remote() if kind == "remote" else _Region())


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(st.sampled_from(["skip", "raw", "path", "remote", "region"]), st.integers(0, 40)),
                      max_size=25),
       n=st.integers(1, 8), max_bytes=st.integers(1, 120), max_remote=st.integers(1, 120))
def test_take_ended_gives_what_take_and_measures_gave(items, n, max_bytes, max_remote):
    source = [_item(k, s) for k, s in items]
    new_it, old_it = iter(source), iter(source)
    while True:
        got, want = _take_ended(new_it, n, max_bytes, max_remote), _old_take_ended(old_it, n, max_bytes, max_remote)
        assert got[1] == want[1] and [id(i) for i in got[0]] == [id(i) for i in want[0]]
        if not got[0]:
            break


class _Counting:
    def __init__(self):
        self.count, self.finished = 0, False

    def advance(self, task, n=1, **fields):
        assert task == "scan" and n > 0
        self.count += n

    def finish(self, task):
        self.finished = True


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 3000), after=st.none() | st.integers(-1, 3000))
def test_the_scan_yields_the_same_entries_and_counts_them_all(n, after):
    entries = [FileEntry(b"%05d" % i, i, 0.0) for i in range(n)]
    cursor = None if after is None else b"%05d" % after
    rec, counts = _Counting(), []
    got = []
    for e in iter_after(entries, cursor, rec):
        got.append(e)
        counts.append(rec.count)
    assert got == [e for e in entries if cursor is None or e.rel > cursor]
    assert rec.count == n and rec.finished
    if cursor is None:
        assert counts[:64] == list(range(min(n, 64)))  # one by one at first (the count moves on a small tree)
        assert all(k - c <= k >> 6 for k, c in enumerate(counts))  # behind by at most a 64th


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.tuples(st.text("0123456789abcdef", min_size=64, max_size=64),
                               st.text("0123456789abcdef", min_size=64, max_size=64), st.none() | st.text(max_size=20)),
                     max_size=10))
def test_a_catalog_that_held_nothing_is_never_asked(keys):
    fresh = KnownKeys.from_catalog([], [], [])
    assert fresh.prefixes_empty
    assert not any(fresh.may_hold(b, k, m) for b, k, m in keys)
    held = KnownKeys.from_catalog([1], [], [])
    assert not held.prefixes_empty
