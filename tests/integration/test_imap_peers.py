"""IMAP servers other than Dovecot (Courier-IMAP 5.0, Cyrus IMAP 3.6): their behaviours that
Dovecot does not show, replayed by the scripted server (tests/services/evil_imap.py), each with the
real server's transcript it is based on (docs/reliability.md D4, D10)."""
from __future__ import annotations

import hashlib

import pytest

from importers.imap import CHANGED, ImapImporter
from services.evil_imap import MAIL, start_evil_imap
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem


def _importer(server, **kw) -> ImapImporter:
    return ImapImporter(server.url(), "pw", allow_plaintext=True, timeout=10, retries=1, backoff=0.05, **kw)


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    yield a
    a.close()


def test_D4_courier_placeholder_for_a_mail_expunged_meanwhile_is_listed_not_archived(archive):
    """Courier-IMAP answers the FETCH of a mail that another session expunged (before this session
    was told) with a placeholder whose RFC822.SIZE is its own length, so it passed the "bytes equal
    RFC822.SIZE" check and was archived in place of the mail. Real transcript (courier-imap
    5.0.13, Debian 12; session B expunged UID 5 after A's EXAMINE; UID 5 had RFC822.SIZE 158)::

        A: 3 UID FETCH 5 (BODY.PEEK[] INTERNALDATE FLAGS RFC822.SIZE)
        S: * 3 FETCH (UID 5 BODY[] {129}
        S: From: System Administrator <root@localhost>
        S: Subject: message unavailable
        S:
        S: This message is no longer available on the server.
        S:  INTERNALDATE "04-Dec-2026 15:47:10 +0000" FLAGS () RFC822.SIZE 129)
        S: 3 OK FETCH completed.

    In the size listing (``UID FETCH 1:4 (RFC822.SIZE FLAGS INTERNALDATE)`` after the expunge)
    Courier already gives ``* 3 FETCH (UID 3 RFC822.SIZE 129 FLAGS () INTERNALDATE "<now>")``.
    A mail never changes under its UID: a body of another size than the listing gave, or Courier's
    placeholder itself, is listed as "source changed during import" (D4), in both the reader's fetch
    and the pack task's.
    """
    server = start_evil_imap({"A-Good": "good", "B-Gone": "courier-expunged", "C-Gone": "courier-expunged-listed"})
    try:
        items = list(_importer(server, prefetch=0, fetch_in_tasks=False).scan(None, ListReporter()))
        summary = Ingest(archive, workers=0).run(_importer(server))
    finally:
        server.stop()
    assert [(i.folder, i.raw) for i in items if isinstance(i, SourceMail)] == [("A-Good", MAIL)]
    problems = {i.ref.split(";")[0]: i.message for i in items if isinstance(i, SourceProblem)}
    assert set(problems) == {"B-Gone", "C-Gone"} and all(p.startswith(CHANGED) for p in problems.values())
    assert (summary.archived, summary.errors) == (1, 2)
    with archive.catalog.reading() as con:
        stored = {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}
    assert stored == {hashlib.sha256(MAIL).hexdigest()}
