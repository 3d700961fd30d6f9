"""``verify --full``'s workers start on the packs the media list before the parent reads the catalog
(verify/ahead.py): a pack's result is taken from that read only where the catalog proves it the same as the
pack's own check; everything else is checked as before, and the report is that of a run without the read ahead.

Each case compares the whole report (every check, its status, count, note and items, in order) with a run that
checks the packs in this process, and counts the packs whose early result was taken or checked again.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.verify_support import build_archive, clone, messages, run_verify, sql
from toolkit.archive import Archive
from toolkit.catalog import check_session
from verify.ahead import _part_range, adopt, check_ahead, join_parts, list_packs, listed_packs, parts_of
from verify.deep import SCAN_CAP, EarlyWorkers, _tasks, check_pack


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ahead-base")
    build_archive(root, None, stamp=False, pack_target=3000)
    return root


@pytest.fixture
def home(base, tmp_path) -> Path:
    return clone(base, tmp_path / "copy")


def _view(report) -> list:
    return [(c.id, c.status, c.count, c.note, c.items) for c in report.checks]


def _packs(home: Path) -> list[Path]:
    return sorted({r["pack"] for r in messages(home).values()})


def _both(home: Path, split_min_bytes: int = 1 << 40):
    """(the report checking the packs in this process, the report over early workers reading ahead, those workers);
    ``split_min_bytes``: the packs of at least this size among the last ones are read ahead in parts (by default
    none: the test archive's packs are small)."""
    inline = run_verify(home, workers=1)
    with EarlyWorkers(home, None, 2, ahead_min_bytes=0, split_min_bytes=split_min_bytes) as early:
        assert early.ahead, "the workers were given the listed packs"
        ahead = run_verify(home, pool_min_bytes=0, early=early)
    return inline, ahead, early


def test_a_clean_archive_takes_every_pack_from_the_read_ahead(home):
    inline, ahead, early = _both(home)
    assert _view(ahead) == _view(inline)
    assert (early.taken, early.redone) == (len(_packs(home)), 0)
    assert ahead.exit_code == 0 and ahead.stats["records_ok"] == inline.stats["records_ok"] > 0


def test_the_result_taken_is_the_packs_own_check(home):
    """adopt() builds, from the read ahead, exactly the dict check_pack returns for the pack (keys in the same
    order, the same msg_ids); a pack with a damaged record gives no result to take."""
    victim = messages(home)[sorted(messages(home))[3]]
    with Archive.open(home) as archive:
        with check_session(archive.catalog) as con:
            tasks = _tasks(con)
        for t in tasks:
            got = adopt(check_ahead(archive, t["medium_id"], t["name"], SCAN_CAP), t)
            assert got == check_pack(archive, t)
            assert got["f04"] and len(got["f04"]) == len(t["rows"])
    data = bytearray(victim["pack"].read_bytes())
    data[victim["offset"] + victim["length"] // 2] ^= 0x24
    victim["pack"].write_bytes(bytes(data))
    with Archive.open(home) as archive:
        t = next(t for t in tasks if t["pack_id"] == victim["pack_id"])
        assert check_ahead(archive, t["medium_id"], t["name"], SCAN_CAP) is None
        assert check_pack(archive, t)["problems"]


def test_a_damaged_pack_read_before_the_catalog_is_checked_again_from_it(home):
    """The damaged pack is listed (and read) before the catalog is opened: its finding is the one a run without
    the read ahead makes (B8's second read included), in the same place of the report."""
    rows = messages(home)
    victim = rows[sorted(rows)[3]]
    data = bytearray(victim["pack"].read_bytes())
    data[victim["offset"] + 3] ^= 0x24
    victim["pack"].write_bytes(bytes(data))
    inline, ahead, early = _both(home)
    assert _view(ahead) == _view(inline)
    assert [i["msg_id"] for i in ahead.get("F02").items] == [victim["msg_id"]]
    assert (early.taken, early.redone) == (len(_packs(home)) - 1, 1)


def test_a_pack_on_the_medium_the_catalog_does_not_know_is_not_reported_by_the_full_checks(home):
    """An orphan pack (a copy under another pack id, as a crash can leave one) is listed and may be read
    ahead, but only the quick checks name it (Q03, a warning); F01-F04 are as without it."""
    src = _packs(home)[0]
    orphan = src.parent.parent / "ff" / ("f" * 32 + ".pack")
    orphan.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, orphan)
    inline, ahead, early = _both(home)
    assert _view(ahead) == _view(inline)
    assert [i["name"] for i in ahead.get("Q03").items] == ["packs/ff/" + "f" * 32 + ".pack"]
    assert ahead.get("F01").status == "ok"
    assert (early.taken, early.redone) == (len(_packs(home)), 0)


def test_a_catalog_pack_missing_from_the_medium_is_reported_missing(home):
    gone = _packs(home)[-1]
    gone.unlink()
    inline, ahead, early = _both(home)
    assert _view(ahead) == _view(inline)
    assert any("is missing from medium" in i["detail"] for i in ahead.get("F01").items)
    assert (early.taken, early.redone) == (len(_packs(home)) - 1, 0)


def test_a_catalog_entry_that_differs_from_the_footer_is_checked_from_the_catalog(home):
    """Every record authenticates, the file is whole, but the catalog's length of one record is another: the
    read ahead (from the footer's entries) is not taken, and F01 names the row as before."""
    victim = messages(home)[sorted(messages(home))[2]]
    sql(home, "UPDATE messages SET length = length + 1 WHERE msg_id = ?", [victim["msg_id"]])
    inline, ahead, early = _both(home)
    assert _view(ahead) == _view(inline)
    assert ahead.get("F01").status == "finding"
    assert early.redone == 1


def test_only_live_local_packs_are_listed_and_only_when_enough(home):
    names = list_packs(home, 0)
    assert sorted(n for _m, n in names) == sorted(str(p.relative_to(home.parent / "medium")) for p in _packs(home))
    assert all(m == 1 for m, _n in names)
    assert list_packs(home, 1 << 40) == []
    assert list_packs(home.parent / "no-such-home", 0) == []


def test_the_archive_reads_its_catalog_after_a_pooled_run(home):
    """A pooled run closes the catalog's connection once the parent has read all it needs (so that its end is off
    the run's tail); the archive opens it again for whatever reads it next."""
    from verify.checks import verify_archive

    with Archive.open(home) as archive, EarlyWorkers(home, None, 2, ahead_min_bytes=0) as early:
        report = verify_archive(archive, full=True, pool_min_bytes=0, early=early)
        assert report.exit_code == 0 and early.taken > 0
        with check_session(archive.catalog) as con:
            assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == len(messages(home))


def test_packs_read_ahead_in_parts_give_the_whole_packs_result(home):
    """A pack read in parts (each part its records, part 0 the file's BLAKE3) joins into the result of reading it
    whole, for any number of parts; a damaged record in any part, or a part missing, leaves nothing to take."""
    with Archive.open(home) as archive:
        with check_session(archive.catalog) as con:
            tasks = _tasks(con)
        for t in tasks:
            whole = check_ahead(archive, t["medium_id"], t["name"], SCAN_CAP)
            assert whole is not None
            for k in (2, 3, 7):
                parts = [check_ahead(archive, t["medium_id"], t["name"], SCAN_CAP, i, k) for i in range(k)]
                assert all(p["blake3"] is None for p in parts[1:])
                assert join_parts(parts) == whole
                assert join_parts(parts[:-1] + [None]) is None
    rows = messages(home)
    victim = rows[sorted(rows)[-1]]
    data = bytearray(victim["pack"].read_bytes())
    data[victim["offset"] + victim["length"] // 2] ^= 0x24
    victim["pack"].write_bytes(bytes(data))
    with Archive.open(home) as archive:
        t = next(t for t in tasks if t["pack_id"] == victim["pack_id"])
        assert join_parts([check_ahead(archive, t["medium_id"], t["name"], SCAN_CAP, i, 3) for i in range(3)]) is None


def test_a_clean_archive_read_ahead_in_parts_takes_every_pack(home):
    inline, ahead, early = _both(home, split_min_bytes=0)
    assert sum(parts_of(listed_packs(home, 0), 2, 0)) > len(_packs(home))
    assert _view(ahead) == _view(inline)
    assert (early.taken, early.redone) == (len(_packs(home)), 0)


def test_a_damaged_pack_read_ahead_in_parts_is_checked_again_from_the_catalog(home):
    """The damaged record is the last of a pack the workers read in parts (in its second part, which reads no
    BLAKE3: its own failure must stop the taking)."""
    listed = listed_packs(home, 0)
    split = [home.parent / "medium" / n for (_m, n, _s), k in zip(listed, parts_of(listed, 2, 0)) if k == 2]
    assert len(split) == 2
    rows = messages(home)
    pack = max(split, key=lambda p: sum(r["pack"] == p for r in rows.values()))
    records = sorted((r for r in rows.values() if r["pack"] == pack), key=lambda r: r["offset"])
    assert len(records) >= 2
    victim = records[-1]
    data = bytearray(victim["pack"].read_bytes())
    data[victim["offset"] + 3] ^= 0x24
    victim["pack"].write_bytes(bytes(data))
    inline, ahead, early = _both(home, split_min_bytes=0)
    assert _view(ahead) == _view(inline)
    assert [i["msg_id"] for i in ahead.get("F02").items] == [victim["msg_id"]]
    assert (early.taken, early.redone) == (len(_packs(home)) - 1, 1)


def test_the_parts_of_a_pack_hold_each_record_once_in_order():
    """_part_range splits any list of records (sorted by offset) into parts that hold each one once, in order."""
    from toolkit.pack import IndexEntry

    for lengths in ([5], [5, 5], [1, 100, 1, 1], [3] * 17, [1000, 1, 1, 1, 1, 1]):
        entries, at = [], 40
        for n in lengths:
            entries.append(IndexEntry(b"x", at, n, n, n))
            at += n + 2
        for k in (1, 2, 3, 5, 8):
            parts = [_part_range(entries, i, k) for i in range(k)]
            assert [e for p in parts for e in p] == entries
