"""The driver's cheaper per-mail steps give exactly what the steps they replaced gave (issue 15, driver CPU).

Each replaced step is compared with its former code, kept here as the reference: joining a tree's paths
by hand (``importers.walk.local_path``, was ``os.path.join``), recording a new target's recipients
(``DedupDecider.add_recipients``, was a loop filling a set), a task pack's index as plain tuples
(``toolkit.ingest._entries``, was ``PackResult.entries``), read hints for many files in one call, the
eml scan handing each local file its envelope cut without ``dataclasses.replace``; and the settings a run
changes for itself (one DuckDB thread, rarer garbage collections) are put back after it.
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import os

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.eml import EmlImporter, cut_partial_emlx, cut_wrapper
from importers.walk import FileEntry, local_path
from toolkit.dedup import EXACT, JOURNAL_MERGE, DedupDecider, Placement
from toolkit.ingest import _entries, _fewer_collections
from toolkit.pack import IndexEntry
from toolkit.pack_tasks import ROW_SCHEMA, PackResult
from toolkit.reporter import NullReporter
from toolkit.source import SourceMail, will_read

_NAME = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\x00" not in b)


@settings(max_examples=300, deadline=None)
@given(root=st.lists(_NAME, max_size=4).map(lambda parts: b"/".join(parts)),
       lead=st.booleans(), trail=st.booleans(), rel=st.lists(_NAME, min_size=1, max_size=4))
def test_local_path_is_os_path_join(root, lead, trail, rel):
    root = (b"/" if lead else b"") + root + (b"/" if trail and root else b"")
    entry = FileEntry(b"/".join(rel), 1, 0.0)
    assert local_path(root, entry, False) == os.path.join(root, entry.rel)
    assert local_path(root, entry, True) == root


def _old_add_recipients(store: dict, target, pairs) -> list:
    """DedupDecider.add_recipients before: a set per target, filled pair by pair."""
    have = store.setdefault(target, set())
    added = []
    for pair in pairs:
        if pair not in have:
            have.add(pair)
            added.append(pair)
    return added


_PAIR = st.tuples(st.sampled_from(["to", "cc", "bcc", "envelope"]), st.sampled_from(["a@x", "b@x", "c@y", "A@x", ""]))


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from([("new", 0), ("new", 1), ("old", 7)]), st.lists(_PAIR, max_size=6)),
                      max_size=8),
       evidence=st.lists(st.tuples(st.sampled_from([7, 8]), _PAIR), max_size=4))
def test_add_recipients_gives_what_the_set_loop_gave(calls, evidence):
    decider, old = DedupDecider(), {}
    decider.take_evidence([7, 8], [(m, k, a) for m, (k, a) in evidence], [])
    for m, (k, a) in evidence:
        old.setdefault(("old", m), set()).add((k, a))
    old.setdefault(("old", 8), set())
    old.setdefault(("old", 7), set())
    for target, pairs in calls:
        assert decider.add_recipients(target, pairs) == _old_add_recipients(old, target, pairs)
    for target, have in old.items():
        assert set(decider._recipients[target]) == have


def test_a_new_targets_recipients_keep_their_order_without_repeats():
    decider = DedupDecider()
    pairs = [("to", "b@x"), ("to", "a@x"), ("cc", "b@x"), ("to", "b@x")]
    assert decider.add_recipients(("new", 0), iter(pairs)) == [("to", "b@x"), ("to", "a@x"), ("cc", "b@x")]
    decision, added, _ = decider.settle(Placement(EXACT, ("new", 0)), [("to", "a@x"), ("bcc", "z@x")], "e1")
    assert (decision, added) == (JOURNAL_MERGE, [("bcc", "z@x")])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**40), st.integers(0, 2**31),
                          st.integers(0, 2**31), st.integers(0, 2**31)), max_size=20, unique_by=lambda r: r[0]))
def test_task_entries_are_those_of_pack_result_entries(records):
    rows = pa.Table.from_pylist([dict(zip(ROW_SCHEMA.names, r)) for r in records], schema=ROW_SCHEMA) if records \
        else ROW_SCHEMA.empty_table()
    before = PackResult([], None, rows).entries()
    assert {b: (e.offset, e.length, e.size, e.csize) for b, e in before.items()} == _entries(PackResult([], None, rows))
    assert all(IndexEntry(bytes.fromhex(b), *t) == before[b] for b, t in _entries(PackResult([], None, rows)).items())


def test_read_hints_for_many_files_pass_over_what_is_not_a_regular_file(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x" * 5000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(plain)
    will_read(*(os.fsencode(p) for p in (fifo, link, tmp_path / "missing", plain)))  # returns, raises nothing
    will_read()


def _old_scan_local(imp: EmlImporter, root: bytes) -> list:
    """EmlImporter._scan_local's mails before: the item, then dataclasses.replace with its envelope cut."""
    from importers.walk import read_local, walk_local

    out = []
    for entry in walk_local(root):
        item = imp._item(entry, lambda e: read_local(root, e, False), None, os.path.join(root, entry.rel))
        if isinstance(item, SourceMail) and item.path is not None:
            cut = cut_partial_emlx if entry.rel.endswith(b".partial.emlx") else cut_wrapper
            out.append(dataclasses.replace(item, envelope_cut=functools.partial(cut, force_raw=imp.force_raw)))
        else:
            out.append(item)
    return out


def _comparable(item):
    d = dict(vars(item))
    for name in ("on_read_error",):  # a closure per item: compared by what it answers
        if d.get(name) is not None:
            d[name] = d[name](OSError(5, "EIO")).message
    cut = d.get("envelope_cut")
    if cut is not None:
        d["envelope_cut"] = (cut.func, cut.args, cut.keywords)
    return type(item).__name__, d


def test_the_eml_scan_gives_the_items_it_gave(tmp_path):
    root = tmp_path / "tree"
    (root / "A.mbox" / "Messages").mkdir(parents=True)
    (root / "a.eml").write_bytes(b"Subject: a\n\nx\n")
    (root / "b.eml").write_bytes(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n")
    (root / "A.mbox" / "Messages" / "1.partial.emlx").write_bytes(b"14\nSubject: c\n\nx\n")
    (root / "A.mbox" / "Messages" / "2.emlx").write_bytes(b"14\nSubject: d\n\nx\n")
    (root / "empty.eml").write_bytes(b"")
    (root / ".hidden.eml").write_bytes(b"Subject: h\n\nx\n")
    for force_raw in (False, True):
        imp = EmlImporter(str(root), force_raw=force_raw)
        new = [i for i in imp.scan(None, NullReporter())]
        assert [_comparable(i) for i in new] == [_comparable(i) for i in _old_scan_local(imp, os.fsencode(root))]


def test_a_run_puts_the_collector_thresholds_back():
    before = gc.get_threshold()
    with _fewer_collections():
        assert gc.get_threshold()[0] >= 50_000
    assert gc.get_threshold() == before


def test_catalog_threads_are_set_and_put_back(tmp_path):
    from toolkit.catalog import Catalog

    cat = Catalog(tmp_path / "c.duckdb", b"k" * 32)
    cat.create({"uuid": "x"})
    default = _threads(cat)
    cat.use_threads(1)
    assert _threads(cat) == 1
    cat.close()  # a new connection gets the setting too
    assert _threads(cat) == 1
    assert cat.threads == 1
    cat.use_threads(None)
    assert _threads(cat) == default and cat.threads is None
    cat.close()


def _threads(cat) -> int:
    with cat.reading() as con:
        return con.execute("SELECT current_setting('threads')").fetchone()[0]
