"""Journal report + the gateway's direct copy end as one message with the union of recipients, either order (D13)."""
from __future__ import annotations

import shutil

import pytest

from importers.eml import EmlImporter
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.ingest import Ingest

SAMPLE = REPO / "sample_data"
DIRECT = SAMPLE / "eml" / "2021" / "projects" / "2021-03-15_vertragsentwurf.eml"
JOURNAL = SAMPLE / "journal" / "journal-report-1.eml"


def _import(a, path):
    return Ingest(a, workers=0).run(EmlImporter(str(path)))


def _state(a):
    with a.catalog.reading() as con:
        msgs = con.execute("SELECT msg_id, blob_id FROM messages").fetchall()
        rec = set(con.execute("SELECT kind, address FROM recipients").fetchall())
        env = con.execute("SELECT count(*) FROM envelopes").fetchone()[0]
        decisions = [r[0] for r in con.execute("SELECT decision FROM sightings ORDER BY seen_at, rowid").fetchall()]
    return msgs, rec, env, decisions


@pytest.mark.parametrize("order", ["journal-first", "direct-first"])
def test_union_of_recipients_in_either_order(tmp_path, order):
    first, second = (JOURNAL, DIRECT) if order == "journal-first" else (DIRECT, JOURNAL)
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        _import(a, first)
        s2 = _import(a, second)
        msgs, rec, env, decisions = _state(a)
        assert len(msgs) == 1, "one message, whichever copy came first"
        assert ("bcc", "legal@example.net") in rec  # the Bcc only the journal knows
        assert any(k == "to" for k, _ in rec)       # the header recipients of the mail itself
        assert env == 1
        if order == "direct-first":
            assert decisions == ["new", "journal-merge"] and s2.merged == 1
        else:
            assert decisions == ["new", "duplicate"] and s2.duplicates == 1
        # the archived bytes are those of the first copy: the direct mail, or the report's embedded original
        from toolkit.journal import parse_journal_report

        kept = parse_journal_report(JOURNAL.read_bytes()).original if order == "journal-first" else DIRECT.read_bytes()
        assert msgs[0][1] == __import__("hashlib").sha256(kept).hexdigest()
    finally:
        a.close()


def test_bifurcated_reports_merge_their_recipients(tmp_path):
    """Two reports of the same original with different envelope recipients: one message, all recipients."""
    report = JOURNAL.read_bytes()
    other = report.replace(b"legal@example.net", b"audit@example.net")
    assert other != report
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.eml").write_bytes(report)
    (src / "b.eml").write_bytes(other)
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = _import(a, src)
        msgs, rec, env, decisions = _state(a)
        assert len(msgs) == 1 and s.merged == 1
        assert {("bcc", "legal@example.net"), ("bcc", "audit@example.net")} <= rec
        assert env == 2
        assert decisions == ["new", "journal-merge"]
        again = _import(a, src)
        assert again.archived == 0 and again.merged == 0 and again.duplicates == 2
    finally:
        a.close()


def test_report_without_original_is_archived_raw_and_flagged(tmp_path):
    raw = JOURNAL.read_bytes()
    cut = raw.index(b"message/rfc822")
    broken = raw[:cut] + b"text/plain\r\n\r\nnothing here\r\n"
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.eml").write_bytes(broken)
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = _import(a, src)
        assert s.archived == 1
        with a.catalog.reading() as con:
            blob, defects = con.execute("SELECT blob_id, defects FROM messages").fetchone()
        assert blob == __import__("hashlib").sha256(broken).hexdigest()
        assert "journal" in defects
    finally:
        a.close()
