"""Files over 4 GiB on an SMB share (docs/reliability.md C7): sizes, reads and resume offsets past 2**32.

An mbox of 4 GiB and more is made on the share's own directory as a sparse file (a hole, then real
mail past the 4 GiB mark), so the test costs no 4 GiB of disk or transfer. Through the real Samba:
the storage reports the size past 2**32, a read seeks past it and gets the right bytes, and an mbox
import resumed from a cursor past 4 GiB reads exactly the next message there (a 32-bit offset
anywhere on the way would read the wrong place, fail the cursor's CRC and start again from byte 0).
"""
from __future__ import annotations

import shutil

import pytest

from importers.mbox import MboxImporter
from tests.services.samba import USER
from toolkit.reporter import ListReporter
from toolkit.storage.location import open_storage

pytestmark = pytest.mark.samba

BASE = (1 << 32) + 4096  # where the real mail starts: past the 4 GiB mark
TAIL = (b"From bob@example.com Mon Jan  7 09:15:00 2019\nFrom: bob@example.com\nSubject: two\n\nbody two\n\n"
        b"From carol@example.com Tue Jan  8 10:00:00 2019\nFrom: carol@example.com\nSubject: three\n\nbody three\n")


def _sparse_mbox(path) -> None:
    with open(path, "wb") as f:
        f.write(b"From alice@example.com Sun Jan  6 08:00:00 2019\nFrom: alice@example.com\nSubject: one\n\n")
        f.seek(BASE - 1)
        f.write(b"\n" + TAIL)


def test_c7_mbox_over_4_gib_on_the_share_reads_and_resumes_past_the_mark(tmp_path, samba, smb_location):
    sub = samba.share_dir / smb_location.rsplit("/", 1)[1]
    sub.mkdir()
    shutil.chown(sub, user=USER)
    big = sub / "big.mbox"
    _sparse_mbox(big)
    shutil.chown(big, user=USER)
    assert big.stat().st_size == BASE + len(TAIL) > 1 << 32

    storage = open_storage(smb_location, samba.password)
    try:
        entry = storage.stat("big.mbox")
        assert entry is not None and entry.size == BASE + len(TAIL)
        with storage.open_read("big.mbox") as f:
            f.seek(BASE)
            assert f.read(len(TAIL)) == TAIL
    finally:
        storage.close()

    # the cursor of message "two" as a scan of the same bytes gives it, moved to where they sit
    small = tmp_path / "tail.mbox"
    small.write_bytes(TAIL)
    two, three = list(MboxImporter(str(small)).scan(None, ListReporter()))
    cursor = dict(two.cursor, start=two.cursor["start"] + BASE, offset=two.cursor["offset"] + BASE)
    assert cursor["offset"] > 1 << 32

    reporter = ListReporter()
    items = list(MboxImporter(f"{smb_location}/big.mbox", smb_password=samba.password).scan(cursor, reporter))
    assert not reporter.warnings, reporter.warnings  # a wrong offset fails the CRC and warns "rewritten"
    assert [i.content() for i in items] == [three.content()]
    assert items[0].cursor["offset"] == BASE + len(TAIL) and items[0].cursor["start"] > 1 << 32
