"""RELIABILITY J9 for local sources: a mail with no usable Date shows the date its source gives, and says which.

The IMAP case (INTERNALDATE) is tests/integration/test_import_imap.py::test_j9_no_or_unparsable_date_falls_back_to_internaldate_and_is_flagged;
here the mbox From_ line and the Maildir name time stamp or file time, through the library on a local archive.
"""
from __future__ import annotations

import datetime as dt
import os

from importers.maildir import MaildirImporter
from importers.mbox import MboxImporter
from toolkit.archive import Archive
from toolkit.ingest import Ingest

UTC = dt.timezone.utc


def _mail(n: int, date: bytes | None) -> bytes:
    return (b"From: a@example.org\nTo: b@example.org\nSubject: mail %d\nMessage-ID: <j9-%d@example.org>\n" % (n, n)
            + (b"Date: " + date + b"\n" if date is not None else b"") + b"\nbody %d\n" % n)


def _rows(archive) -> dict[str, tuple]:
    with archive.catalog.reading() as con:
        return {r[0]: r[1:] for r in con.execute("SELECT subject, sent_date, internal_date, defects FROM messages").fetchall()}


def test_j9_mbox_from_line_and_maildir_times_stand_in_for_a_missing_date(tmp_path):
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        box = tmp_path / "in.mbox"
        box.write_bytes(b"From a@example.org Tue Mar  5 06:07:08 2013\n" + _mail(1, None) + b"\n"
                        + b"From a@example.org Wed Apr 10 11:12:13 2013\n" + _mail(2, b"Mon, 7 Jan 2019 09:15:00 +0000") + b"\n")
        md = tmp_path / "Maildir"
        for d in ("cur", "new", "tmp"):
            (md / d).mkdir(parents=True)
        (md / "cur" / "1400000000.M1P1.host:2,S").write_bytes(_mail(3, b"garbage"))
        plain = md / "cur" / "no-time-in-this-name:2,S"
        plain.write_bytes(_mail(4, None))
        os.utime(plain, (1500000000, 1500000000))
        for importer in (MboxImporter(str(box)), MaildirImporter(str(md))):
            s = Ingest(archive, workers=0).run(importer)
            assert s.errors == 0 and s.archived == s.seen == 2
        rows = _rows(archive)
    finally:
        archive.close()
    expect = {
        "mail 1": (dt.datetime(2013, 3, 5, 6, 7, 8, tzinfo=UTC), "date-from-from-line", "date-missing"),
        "mail 3": (dt.datetime.fromtimestamp(1400000000, UTC), "date-from-maildir-name-time", "date-unparsable"),
        "mail 4": (dt.datetime.fromtimestamp(1500000000, UTC), "date-from-file-time", "date-missing"),
    }
    for subject, (internal, flag, why) in expect.items():
        sent, got, defects = rows[subject]
        assert sent is None and got == internal, (subject, sent, got)
        assert flag in defects.split(",") and why in defects.split(","), (subject, defects)
    assert "date-from-" not in (rows["mail 2"][2] or "")  # a good Date: no fallback
