"""``verify --full`` finds exactly what the per-pack check before issue 15's speed work found
(tests/integration/verify_reference.py, the code of d469f3c): the same F01-F04 findings and warnings, in the
same words, order and objects, with the same notes.

Today the tasks carry only their packs' entries, the workers return each mail's F04 key (``verify.mailkey``)
and the parent compares the keys with the catalog's; the reference compared the fields of every row in the
worker. Both run on the same damaged copies of one archive: a byte flipped in each region of a pack (header:
magic, archive uuid, pack id; a record: nonce, ciphertext, tag; the footer index; the trailer: footer offset
and magic), a pack cut short, records swapped, a record copied from another pack, catalog rows edited (every
compared field, a blob id, an offset) and all of these at once; in this process, over worker processes, and
over the command line's workers that start on the packs before the catalog is read (verify/ahead.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.verify_reference import reference_full
from tests.integration.verify_support import build_archive, by_subject, clone, messages, run_verify, sql
from toolkit.archive import Archive
from toolkit.pack import TRAILER_SIZE
from verify.deep import EarlyWorkers


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact-base")
    build_archive(root, None, stamp=False, pack_target=3000)
    return root


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x24
    path.write_bytes(bytes(data))


def _footer_offset(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[-TRAILER_SIZE:-8], "big")


def _view(report) -> list:
    return [(c.id, c.status, c.count, c.note, c.items) for c in report.checks if c.id in ("F01", "F02", "F03", "F04")]


def _damage(home: Path, case: str) -> None:
    rows = messages(home)
    victim = rows[sorted(rows)[3]]
    pack = victim["pack"]
    if case in ("magic", "all"):
        _flip(pack, 2)
    if case == "uuid":
        _flip(pack, 12)
    if case == "pack id":
        _flip(pack, 30)
    if case in ("nonce", "all"):
        _flip(pack, victim["offset"] + 3)
    if case == "ciphertext":
        _flip(pack, victim["offset"] + victim["length"] // 2)
    if case == "tag":
        _flip(pack, victim["offset"] + victim["length"] - 2)
    if case in ("footer", "all"):
        other = rows[sorted(rows)[-1]]["pack"]
        _flip(other, _footer_offset(other) + 20)
    if case == "trailer offset":
        _flip(pack, pack.stat().st_size - 12)
    if case == "trailer magic":
        _flip(pack, pack.stat().st_size - 3)
    if case == "cut":
        data = pack.read_bytes()
        pack.write_bytes(data[: victim["offset"] + victim["length"] // 2])
    if case in ("swapped", "all"):
        a, b = by_subject(rows, "Twin message A"), by_subject(rows, "Twin message B")
        data = bytearray(a["pack"].read_bytes())
        ra = bytes(data[a["offset"]:a["offset"] + a["length"]])
        rb = bytes(data[b["offset"]:b["offset"] + b["length"]])
        data[a["offset"]:a["offset"] + a["length"]] = rb
        data[b["offset"]:b["offset"] + b["length"]] = ra
        a["pack"].write_bytes(bytes(data))
    if case == "copied":
        c = by_subject(rows, "Twin message C")
        a = by_subject(rows, "Twin message A")
        assert c["pack"] != a["pack"] and c["length"] == a["length"]
        src = a["pack"].read_bytes()[a["offset"]:a["offset"] + a["length"]]
        data = bytearray(c["pack"].read_bytes())
        data[c["offset"]:c["offset"] + c["length"]] = src
        c["pack"].write_bytes(bytes(data))
    if case in ("rows", "all"):
        ids = sorted(rows)
        sql(home, "UPDATE messages SET subject = 'edited' WHERE msg_id = ?", [ids[1]])
        sql(home, "UPDATE messages SET sent_date = sent_date + INTERVAL 1 SECOND WHERE msg_id = ?", [ids[2]])
        sql(home, "UPDATE messages SET message_id = NULL WHERE msg_id = ?", [ids[5]])
        sql(home, "UPDATE messages SET from_addr = upper(from_addr) WHERE msg_id = ?", [ids[6]])
        sql(home, "UPDATE recipients SET address = 'someone-else@example.net' WHERE msg_id = ? AND kind IN ('to', 'cc')",
            [ids[7]])
        sql(home, "INSERT INTO recipients (msg_id, kind, address) VALUES (?, 'cc', 'added@example.net')", [ids[8]])
    if case == "repeated address":  # a row listing one of its addresses twice: a set, no change (the keys differ)
        sql(home, "INSERT INTO recipients SELECT msg_id, kind, address FROM recipients WHERE msg_id = ? AND kind = 'to' "
            "LIMIT 1", [sorted(rows)[2]])
    if case == "blob id":
        ids = sorted(rows)
        sql(home, "UPDATE messages SET blob_id = ? WHERE msg_id = ?", [rows[ids[9]]["blob_id"][::-1], ids[4]])
    if case == "offset":
        sql(home, "UPDATE messages SET \"offset\" = \"offset\" + 1 WHERE msg_id = ?", [victim["msg_id"]])


CASES = ["clean", "magic", "uuid", "pack id", "nonce", "ciphertext", "tag", "footer", "trailer offset",
         "trailer magic", "cut", "swapped", "copied", "rows", "repeated address", "blob id", "offset", "all"]
#: the cases in which nothing differs from what the mails say
CLEAN = ("clean", "repeated address")


@pytest.mark.parametrize("case", CASES)
def test_full_verify_finds_what_the_reference_found(base, tmp_path, case):
    home = clone(base, tmp_path / "copy")
    _damage(home, case)
    with Archive.open(home) as archive:
        want = _view(reference_full(archive))
    got = _view(run_verify(home, workers=1))
    assert got == want
    if case not in CLEAN:
        assert any(status == "finding" for _id, status, *_ in got), got
    if case in ("rows", "repeated address", "all"):  # the worker processes too (keys pickled back, compared in the parent)
        assert _view(run_verify(home, workers=2, pool_min_bytes=0)) == want
    # the command line's workers, which start on the packs the medium lists before the catalog is read
    # (verify/ahead.py): a pack whose result the catalog does not prove is checked again from its entries
    with EarlyWorkers(home, None, 2, ahead_min_bytes=0) as early:
        assert _view(run_verify(home, pool_min_bytes=0, early=early)) == want
    packs = len({r["pack_id"] for r in messages(home).values()})
    if case in (*CLEAN, "rows"):  # edited header fields leave the entries as they are: F04 finds them in the parent
        assert (early.taken, early.redone) == (packs, 0)
    else:
        assert early.redone >= 1 and early.taken + early.redone <= packs


def test_the_reference_sees_the_edited_fields(base, tmp_path):
    """The comparison above is not between two blind checks: each edited row is an F04 finding naming its field."""
    home = clone(base, tmp_path / "copy")
    _damage(home, "rows")
    with Archive.open(home) as archive:
        f04 = next(c for c in reference_full(archive).checks if c.id == "F04")
    details = " ".join(i["detail"] for i in f04.items)
    assert f04.count == 6
    for field in ("subject: catalog", "sent_date: catalog", "message_id: catalog", "from_addr: catalog",
                  "to recipients", "cc recipients"):
        assert field in details, details
    shutil.rmtree(tmp_path / "copy")


@pytest.mark.parametrize("case", ["clean", "rows", "blob id", "blob id text", "all"])
def test_the_catalog_read_by_parts_and_the_waiting_results_packed_find_the_same(base, tmp_path, monkeypatch, case):
    """K8: the entries and keys read one pack at a time (``PART_ROWS`` 1: a query per pack) and every result
    that waits while the catalog is read packed (``LOOSE_RESULTS`` 0) give the reference's findings; a blob id
    that is not the hex an import writes (upper case) is held as its text and named as it is."""
    import verify.deep as deep

    home = clone(base, tmp_path / "copy")
    if case == "blob id text":
        ids = sorted(messages(home))
        sql(home, "UPDATE messages SET blob_id = upper(blob_id) WHERE msg_id = ?", [ids[4]])
    else:
        _damage(home, case)
    with Archive.open(home) as archive:
        want = _view(reference_full(archive))
    monkeypatch.setattr(deep, "PART_ROWS", 1)
    monkeypatch.setattr(deep, "LOOSE_RESULTS", 0)
    assert _view(run_verify(home, workers=1)) == want
    with EarlyWorkers(home, None, 2, ahead_min_bytes=0) as early:
        assert _view(run_verify(home, pool_min_bytes=0, early=early)) == want
        assert early.waiting.arrived >= 1
    assert _view(run_verify(home, workers=2, pool_min_bytes=0)) == want
    if case == "blob id text":  # held as its text, as written: the tasks' rows name it so
        from toolkit.catalog import check_session

        with Archive.open(home) as archive, check_session(archive.catalog) as con:
            blobs = {r[2] for t in deep._tasks(con) for r in t["rows"]}
        assert len({b for b in blobs if b != b.lower()}) == 1 and len(blobs) == len(messages(home))
