"""A tree's walk held in columns (importers/walk_table.py; docs/reliability.md K8)."""
from __future__ import annotations

import errno
import os
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from importers import walk
from importers.walk_table import FileEntry, Walk

_entries = st.lists(st.builds(
    FileEntry,
    st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b) | st.sampled_from([b"a", b"a/b", b"a.b", b"a/b/c"]),
    st.integers(0, 2**62), st.floats(allow_nan=False, allow_infinity=False),
    st.none() | st.sampled_from(["symbolic link (never followed)", "FIFO (never opened)"])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(entries=_entries)
def test_a_walk_reads_as_the_sorted_list_of_its_entries(entries):
    """Length, iteration, indexing (also from the end, and slices) and equality: those of the list sorted by path,
    equal paths in the order given (a stable sort, as ``list.sort`` was)."""
    want = sorted(entries, key=lambda e: e.rel)
    got = Walk.of(entries)
    assert len(got) == len(want)
    assert list(got) == want and got == want and want == got
    assert [got[i] for i in range(len(want))] == want
    assert [got[-i] for i in range(1, len(want) + 1)] == [want[-i] for i in range(1, len(want) + 1)]
    assert got[1:5] == want[1:5] and got[::-2] == want[::-2]
    if want:
        assert got != want[:-1] and got != [*want[:-1], FileEntry(want[-1].rel + b"x", 0, 0.0)]


def test_an_index_past_either_end_is_refused_as_a_list_s():
    got = Walk.of([FileEntry(b"b", 1, 0.0), FileEntry(b"a", 2, 0.0)])
    for bad in (2, -3):
        try:
            got[bad]
        except IndexError:
            continue
        raise AssertionError(f"index {bad} was not refused")
    assert got[-1] == FileEntry(b"b", 1, 0.0) and got[0] == FileEntry(b"a", 2, 0.0)


def _tree(root, n: int) -> None:
    for d in range(n // 500):
        folder = root / f"user{d:03d}" / "Inbox"
        folder.mkdir(parents=True)
        for i in range(500):
            (folder / f"message-{i:06d}.eml").write_bytes(b"x" * (i % 7))


def test_the_walk_of_a_large_tree_costs_its_paths_and_a_few_bytes_each(tmp_path):
    """K8: 20,000 files held in less than their paths' length + 40 bytes each (a list of entries held ~190–230 bytes
    each: ~234 MB for a tree of a million files), and the same entries as a list of them would be."""
    _tree(tmp_path, 20_000)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        got = walk.walk_local(os.fsencode(tmp_path))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 20_000
    paths = sum(len(e.rel) for e in got)
    assert (held - before - paths) / len(got) < 40, (held - before - paths) / len(got)
    assert got[0] == FileEntry(b"user000/Inbox/message-000000.eml", 0, got[0].mtime)
    assert [e.rel for e in got] == sorted(e.rel for e in got)


def test_a_listing_that_fails_half_way_lists_the_directory_as_unreadable_and_nothing_of_it(tmp_path, monkeypatch):
    """A folder whose listing breaks off (an I/O error on the way) is one entry "directory not readable", without the
    files and subfolders it had listed before the error, as when its listing failed at once; the other folders are
    walked as always."""
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "1.eml").write_bytes(b"a")
    bad = tmp_path / "bad"
    (bad / "sub").mkdir(parents=True)
    (bad / "sub" / "deep.eml").write_bytes(b"b")
    for i in range(5):
        (bad / f"{i}.eml").write_bytes(b"c")
    real_scandir = os.scandir
    bad_ino = bad.stat().st_ino

    class Breaking:
        def __init__(self, fd):
            self._it = real_scandir(fd)
            self._left = 3 if os.fstat(fd).st_ino == bad_ino else None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            return self

        def __next__(self):
            if self._left is not None:
                if self._left == 0:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                self._left -= 1
            return next(self._it)

    monkeypatch.setattr(walk.os, "scandir", Breaking)
    got = walk.walk_local(os.fsencode(tmp_path))
    assert [(e.rel, e.skip_reason) for e in got] == [
        (b"bad", f"directory not readable: {os.strerror(errno.EIO)}"), (b"good/1.eml", None)]


def test_a_scan_that_reads_its_walk_once_lets_each_block_go_and_a_kept_walk_stays_whole(tmp_path):
    """``iter_after`` reads a walk once (``Walk.consume``): the blocks it passed are let go, so a scan of a million
    files holds less and less of its walk while the run goes on, and an entry of a passed block cannot be read
    again; a walk the start-up keeps for a second scan (``keep_walk(..., again=True)``) stays whole through the
    first one, and the second one lets it go."""
    from importers import walk_table

    n = 3 * walk_table.BLOCK + 5
    entries = [FileEntry(b"f%07d" % i, i, float(i)) for i in range(n)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        got = Walk.of(entries)
        whole, _ = tracemalloc.get_traced_memory()
        seen = []
        for e in walk.iter_after(got, None):
            seen.append(e.rel)
            if len(seen) == 2 * walk_table.BLOCK + 1:  # two blocks passed, the third one being read
                half, _ = tracemalloc.get_traced_memory()
                half -= sum(len(r) + 33 + 8 for r in seen)
        seen_bytes = sum(len(r) + 33 + 8 for r in seen)  # what the test's own list holds
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [e.rel for e in entries]
    walk_bytes = whole - before
    assert end - before - seen_bytes < walk_bytes * 0.05, (end - before - seen_bytes, walk_bytes)
    assert half - before < walk_bytes * 0.6, (half - before, walk_bytes)  # two of four blocks let go
    try:
        got[0]
    except RuntimeError as exc:
        assert "walk the tree again" in str(exc)
    else:
        raise AssertionError("an entry of a released block was read")
    assert len(got) == n

    root = os.fsencode(tmp_path)
    kept = Walk.of(entries)
    walk.keep_walk(root, kept, again=True)
    assert [e.rel for e in walk.iter_after(walk.walk_local(root), b"f0000009")][:1] == [b"f0000010"]
    assert kept == entries  # whole after the first scan
    walk.keep_walk(root, kept)
    assert sum(1 for _ in walk.iter_after(walk.walk_local(root), None)) == n
    try:
        kept[n - 1]
    except RuntimeError:
        pass
    else:
        raise AssertionError("the last scan of a kept walk did not let it go")
