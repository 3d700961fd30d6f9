"""``import --dry-run``'s duplicate decisions (toolkit/dryrun.py): the catalog's keys are held as prefixes and
looked up exactly in batches, and every decision is still made in the source's order, whatever the batch."""
from __future__ import annotations

from pathlib import Path

import pytest

from importers.eml import EmlImporter
from toolkit import dryrun
from toolkit.archive import Archive
from toolkit.ingest import Ingest


def _mail(i: int, tail: str = "") -> bytes:
    return (f"From: a{i}@example.com\nTo: b@example.com\nSubject: s{i}\nMessage-ID: <m{i}@x>\n"
            f"Date: Mon, 7 Jan 2019 09:15:{i:02d} +0000\n\nbody {i}\n{tail}").encode()


@pytest.mark.parametrize("batch", [1, 2, 3, 100])
def test_dry_run_decides_in_source_order_with_the_catalog_asked_in_batches(tmp_path, monkeypatch, batch):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    for i in range(3):
        (old / f"{i}.eml").write_bytes(_mail(i))
    a = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        assert Ingest(a, workers=0).run(EmlImporter(str(old))).status == "complete"
        # in name order: archived, new, archived, a copy of the new one, a new one, the same mail with CRLF line
        # ends (same dedup key, other bytes and length: the first of the two is the one counted), archived
        order = [_mail(0), _mail(10), _mail(1), _mail(10), _mail(11, "x" * 50),
                 _mail(11, "x" * 50).replace(b"\n", b"\r\n"), _mail(2)]
        for n, raw in enumerate(order):
            (new / f"{n:02d}.eml").write_bytes(raw)
        monkeypatch.setattr(dryrun, "LOOKUP_BATCH", batch)
        s = dryrun.dry_run(a, EmlImporter(str(new)))
    finally:
        a.close()
    assert (s.read, s.would_archive, s.duplicates) == (7, 2, 5)
    assert s.would_archive_bytes == len(_mail(10)) + len(_mail(11, "x" * 50))


def test_dry_run_counts_a_catalog_duplicate_after_a_waiting_mail_once(tmp_path, monkeypatch):
    """A mail whose prefix is in the catalog but which is not archived (a prefix shared by chance) waits, and a
    later copy of it is then a duplicate of it, not a second mail to archive."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "0.eml").write_bytes(_mail(5))
    (src / "1.eml").write_bytes(_mail(5))
    a = Archive.create(tmp_path / "home", str(tmp_path / "m"))
    try:
        real_from_sorted = dryrun.KnownKeys.from_sorted

        def everything_may_be_there(*arrays):  # every key's prefix "in the catalog": all mails wait
            known = real_from_sorted(*arrays)
            known.may_hold = lambda *keys: True
            return known

        monkeypatch.setattr(dryrun.KnownKeys, "from_sorted", staticmethod(everything_may_be_there))
        monkeypatch.setattr(dryrun, "LOOKUP_BATCH", 100)
        s = dryrun.dry_run(a, EmlImporter(str(src)))
    finally:
        a.close()
    assert (s.read, s.would_archive, s.duplicates, s.would_archive_bytes) == (2, 1, 1, len(_mail(5)))
