"""RELIABILITY J9 for retention: a Date that parses but is implausible does not set the retention clock
(docs/retention.md "The retention clock"). A forged ``Date: 1 Jan 1900`` would make a mail deletable at once
under a 5-year policy, a ``Date: 2999`` would keep it forever; instead each counts from its mbox From_ line
(the internal date), or from the time it was archived when that is implausible too. The catalog keeps the
sent date the mail says. A normal mail still counts from its sent date.

Through the library on a local archive, with a fixed "now": the retention report, a deletion request, its
approval and the purge's re-check (``toolkit/purge_rules.py``). The IMAP case (INTERNALDATE) is in
tests/integration/test_import_imap.py::test_j9_no_or_unparsable_date_falls_back_to_internaldate_and_is_flagged.
"""
from __future__ import annotations

import datetime as dt

from importers.mbox import MboxImporter
from toolkit.archive import Archive
from toolkit.catalog import retention as rows
from toolkit.ingest import Ingest
from toolkit.purge_rules import deletable_now
from toolkit.retention import add_years

UTC = dt.timezone.utc
# subject -> (Date header, mbox From_ line date)
MAILS = {
    "forged past": (b"Mon, 1 Jan 1900 00:00:00 +0000", b"Tue Mar  5 06:07:08 2024"),
    "forged future": (b"Tue, 1 Jan 2999 00:00:00 +0000", b"Mon Jun  1 10:00:00 2015"),
    "normal": (b"Sat, 7 Jan 2012 09:15:00 +0000", b"Sat Jan  7 09:20:00 2012"),
    "all forged": (b"Tue, 1 Jan 2999 00:00:00 +0000", b"Tue Jan  1 00:00:00 2999"),
}


def _mbox() -> bytes:
    out = b""
    for n, (subject, (date, from_line)) in enumerate(MAILS.items()):
        out += (b"From a@example.org " + from_line + b"\nFrom: a@example.org\nTo: b@example.com\nSubject: "
                + subject.encode() + b"\nMessage-ID: <j9-clock-%d@example.org>\nDate: " % n + date + b"\n\nbody\n\n")
    return out


def test_j9_implausible_dates_do_not_set_the_retention_clock(tmp_path):
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        (tmp_path / "in.mbox").write_bytes(_mbox())
        s = Ingest(archive, workers=0).run(MboxImporter(str(tmp_path / "in.mbox")))
        assert (s.errors, s.archived) == (0, 4)
        with archive.catalog.writing() as con:
            ids = {r[0]: r[1:] for r in con.execute(
                "SELECT subject, msg_id, sent_date, defects, archived_at FROM messages").fetchall()}
            rows.set_policy(con, "domain", "example.org", 5, "lead")
            now = dt.datetime(2026, 12, 4, tzinfo=UTC)
            report = {m["msg_id"]: m for m in rows.report(con, {}, now)["mails"]}
            late = rows.report(con, {}, dt.datetime(2029, 3, 5, 6, 7, 8, tzinfo=UTC))
            late = {m["msg_id"]: m["state"] for m in late["mails"]}
            # a request for all four is refused: the forged-past mail (and the all-forged one) are kept
            msg = {subject: ids[subject][0] for subject in MAILS}
            refused = rows.request_deletion(con, "all", "tidy up", "lead", sorted(msg.values()), {}, now)
            ok = rows.request_deletion(con, "two", "tidy up", "lead", [msg["forged future"], msg["normal"]], {}, now)
            assert "request_id" in ok, ok
            rows.decide_request(con, ok["request_id"], "officer", True, None, {}, now)
            purgeable = deletable_now(con, [msg["forged future"], msg["normal"]], now)
    finally:
        archive.close()

    # the catalog keeps what the mails say, flagged
    for subject in ("forged past", "forged future", "all forged"):
        _, sent, defects, _ = ids[subject]
        assert sent.year in (1900, 2999) and "date-implausible" in defects.split(","), (subject, sent, defects)
    assert "date-implausible" not in (ids["normal"][2] or "")

    archived_at = ids["all forged"][3]
    expect = {  # subject -> (date the keep runs from, which, state on 2026-12-04)
        "forged past": (dt.datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC), "internal", "kept"),
        "forged future": (dt.datetime(2015, 6, 1, 10, tzinfo=UTC), "internal", "deletable"),
        "normal": (dt.datetime(2012, 1, 7, 9, 15, tzinfo=UTC), "sent", "deletable"),  # unchanged: the sent date
        "all forged": (archived_at, "archived", "kept"),
    }
    for subject, (base, kind, state) in expect.items():
        m = report[msg[subject]]
        assert (m["date"], m["date_kind"], m["state"]) == (base, kind, state), (subject, m)
        assert m["deletable_from"] == add_years(base, 5), (subject, m)
    # the forged-past mail becomes deletable 5 years after its From_ line, to the second
    assert late[msg["forged past"]] == "deletable" and late[msg["all forged"]] == "kept"
    assert "refused" in refused and "2 mails kept by policy domain example.org (5 years)" in refused["refused"]
    assert "j9-clock-0@example.org" in refused["refused"] and "j9-clock-3@example.org" in refused["refused"]
    assert purgeable == {msg["forged future"], msg["normal"]}
