"""``import share``'s plan of a walked tree, made as it is read (importers/share.py ``plan``; docs/reliability.md K8).

The former plan, a list of one unit per loose file, is kept here as the reference."""
from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from importers import maildir as md
from importers import share
from importers.walk_table import FileEntry, Walk


def old_plan(entries):
    """The former ``plan``: every unit made at once, then sorted by key."""
    roots = share.maildir_roots(entries)
    units = [(r, "maildir", None) for r in roots]
    root_set = set(roots)
    for e in entries:
        owner = share._owner(e.rel, root_set)
        if owner is not None and not e.skip_reason and md.is_maildir_member(share._inner(e.rel, owner)):
            continue
        if owner is not None and e.skip_reason and md.classify(share._inner(e.rel, owner))[0] == md.MESSAGE:
            continue
        units.append((e.rel, "file", e))
    units.sort(key=lambda u: u[0])
    return units


_names = st.sampled_from([b"a.eml", b"b", b"mbox", b"1700000000.M1P2.host", b"1700000001.M3P4.host:2,S",
                          b"maildirfolder", b"dovecot-uidlist", b"x.txt"])
_dirs = st.sampled_from([b"", b"cur/", b"new/", b"tmp/", b"Mail/cur/", b"Mail/new/", b"Mail/.Sent/cur/",
                         b"Mail/.Sent/", b"old/", b"old/Maildir/cur/", b"u1/.Drafts/new/", b"u1/cur/"])
_entries = st.lists(st.builds(lambda d, n, skip: FileEntry(d + n, 10, 1.0, skip), _dirs, _names,
                              st.none() | st.just("vanished or unreadable during the scan: No such file")),
                    max_size=40, unique_by=lambda e: e.rel)


@settings(max_examples=300, deadline=None)
@given(entries=_entries)
def test_the_plan_made_as_it_is_read_is_the_former_list(entries):
    """The same units in the same order (Maildirs before a file of the same key, as the former stable sort had
    them), and its length is their number, for a walk and for a plain list of entries."""
    want = old_plan(sorted(entries, key=lambda e: e.rel))
    for walked in (Walk.of(entries), sorted(entries, key=lambda e: e.rel)):
        got = share.plan(walked)
        assert len(got) == len(want)
        assert [(u.key, u.kind, u.entry) for u in got] == want


def test_a_plan_of_many_loose_files_holds_a_bit_each(tmp_path):
    """K8: the plan of 40,000 loose files holds under one byte a file beside its walk (the former list held a unit
    and its entry per file: ~300 MB for a million), and reading it lets the walk go."""
    entries = [FileEntry(b"dept%02d/file-%06d.doc" % (i % 40, i), 100 + i, 1.0) for i in range(40_000)]
    entries += [FileEntry(b"home/Maildir/cur/17000%05d.M1P1.h:2,S" % i, 50, 1.0) for i in range(100)]
    tracemalloc.start()
    try:
        walked = Walk.of(entries)
        before, _ = tracemalloc.get_traced_memory()
        got = share.plan(walked)
        held, _ = tracemalloc.get_traced_memory()
        keys = 0
        for u in got:
            keys += 1
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == keys == 40_001  # the loose files and one Maildir
    assert (held - before) / 40_000 < 1, (held - before) / 40_000
    assert after < before * 0.2, (before, after)  # the walk's blocks went as the units passed
