"""D11 cases Dovecot cannot play, against a scripted POP3 server (tests/services/evil_pop3.py):
a server without UIDL (every run reads everything, dedup by content stores nothing twice) and a
maildrop locked by another session (retried as a busy link, never taken for a wrong password)."""
from __future__ import annotations

import hashlib

import pytest

from importers.pop3 import Pop3Importer
from services.evil_pop3 import start_evil_pop3
from toolkit.archive import Archive
from toolkit.errors import SourceError
from toolkit.net.tls import TlsRequiredError
from toolkit.ingest import Ingest

MAILS = [
    b"From: a@example.com\r\nSubject: one\r\nMessage-ID: <one@pop.test>\r\n\r\nfirst\r\n.dot line\r\n",
    b"From: b@example.com\r\nSubject: two\r\n\r\nno message-id here\r\n",
    b"From: c@example.com\nSubject: three\nMessage-ID: <three@pop.test>\n\nbare LF\n..two dots\n",
]


def _importer(server, **kw) -> Pop3Importer:
    return Pop3Importer(server.url(), "pw", allow_plaintext=True, timeout=10, **{"backoff": 0.05, **kw})


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    yield a
    a.close()


def test_D11_without_uidl_every_run_reads_all_and_dedup_stores_nothing_twice(archive):
    server = start_evil_pop3(MAILS, uidl=False)
    try:
        first = Ingest(archive, workers=0).run(_importer(server))
        second = Ingest(archive, workers=0).run(_importer(server))
    finally:
        server.stop()
    assert (first.status, first.archived, first.errors) == ("complete", 3, 0)
    assert (second.status, second.seen, second.archived, second.duplicates) == ("complete", 3, 0, 3)
    with archive.catalog.reading() as con:
        stored = {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}
        cursor = con.execute("SELECT cursor FROM cursors").fetchall()
    assert stored == {hashlib.sha256(m).hexdigest() for m in MAILS}  # exact bytes, dots unstuffed
    assert all('"last": null' in c[0] for c in cursor)  # no UIDL, no position to resume from
    assert not any(c.startswith(b"DELE") for c in server.commands)
    assert server.commands.count(b"RETR 1") == 2


def test_D11_locked_maildrop_is_retried_then_imported(archive):
    server = start_evil_pop3(MAILS, locked=2)
    try:
        imp = _importer(server)
        summary = Ingest(archive, workers=0).run(imp)
    finally:
        server.stop()
    assert (summary.status, summary.archived) == ("complete", 3)
    assert imp.logins == 3 and server.commands.count(b"PASS ***") == 3


def test_D11_maildrop_locked_for_good_gives_a_clear_retryable_error_not_an_auth_failure(archive):
    server = start_evil_pop3(MAILS, locked=10**6)
    try:
        imp = _importer(server, retries=2)
        with pytest.raises(SourceError) as err:
            Ingest(archive, workers=0).run(imp)
    finally:
        server.stop()
    assert "maildrop busy" in str(err.value) and "[IN-USE]" in str(err.value)
    assert err.value.exit_code != 4  # not "login rejected": a locked maildrop is no wrong password
    assert server.commands.count(b"PASS ***") == 3  # one try + two retries, no login storm


COURIER_CAPA = [b"TOP", b"USER", b"LOGIN-DELAY 10", b"PIPELINING", b"UIDL", b"UTF8 USER", b"IMPLEMENTATION Courier Mail Server"]


def test_D11_courier_sends_a_mail_with_8bit_headers_as_stored_only_after_utf8(archive):
    """Courier's POP3 (courier-pop 1.0.16, Debian 12) replaces a mail whose header has 8-bit bytes
    with a notice of its own, a new random boundary each time, unless the client sent UTF8
    (RFC 6856). Without UTF8 the import archived that notice instead of the mail, and a rerun
    without a cursor a second, different one. Real transcript (the mail was APPENDed over IMAP
    with a raw UTF-8 Subject; LIST said 161 octets)::

        S: +OK Hello there.
        C: CAPA
        S: +OK Here's what I can do:
        S: TOP / USER / LOGIN-DELAY 10 / PIPELINING / UIDL / UTF8 USER / IMPLEMENTATION Courier Mail Server / .
        C: USER ctest / PASS secret
        C: RETR 1502
        S: +OK 864 octets follow.
        S: From: Mail Delivery Subsystem <postmaster>
        S: Subject: Cannot display Unicode content
        S: Content-Type: multipart/mixed; boundary="=_3838-1796398909"
        S: ... This E-mail message was determined to be Unicode-formatted ...
        S: --=_3838-1796398909 / Content-Type: message/global / (the mail) / --=_3838-1796398909--

    and with ``UTF8`` first (``+OK UTF8 enabled``), ``RETR 1502`` gave ``+OK 161 octets follow.``
    and the mail as stored. Courier accepts UTF8 before USER and after PASS; it is sent before USER.
    """
    mails = [MAILS[0], "From: d@example.com\r\nSubject: Grüße\r\nMessage-ID: <u8@pop.test>\r\n\r\nGrüße\r\n".encode()]
    server = start_evil_pop3(mails, uidl=False, capa=COURIER_CAPA)
    try:
        first = Ingest(archive, workers=0).run(_importer(server))
        second = Ingest(archive, workers=0).run(_importer(server))
    finally:
        server.stop()
    assert (first.status, first.archived, first.errors) == ("complete", 2, 0)
    assert (second.archived, second.duplicates) == (0, 2)  # the same bytes again: nothing new
    with archive.catalog.reading() as con:
        stored = {r[0] for r in con.execute("SELECT blob_id FROM messages").fetchall()}
    assert stored == {hashlib.sha256(m).hexdigest() for m in mails}
    assert server.commands.count(b"UTF8 ") == 2
    assert all(server.commands.index(b"UTF8 ", i) < server.commands.index(b"USER evil", i)
               for i, c in enumerate(server.commands) if c == b"CAPA ")  # in each session, before the login


def test_D9_cyrus_without_tls_refuses_user_which_is_no_wrong_password(archive):
    """Cyrus's POP3 without TLS (``allowplaintext: no``) lists no USER in CAPA and refuses it; the
    import called that a rejected login ("Check the user and password", exit 4). PASS is never
    sent after a refused USER, so the password stayed here; now the error says what is wrong.
    Real transcript (cyrus-pop3d 3.6.1, Debian 12)::

        S: +OK vm Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5 server ready <1721...@vm>
        C: CAPA
        S: +OK List of capabilities follows
        S: EXPIRE NEVER / LOGIN-DELAY 0 / TOP / UIDL / PIPELINING / RESP-CODES / AUTH-RESP-CODE / IMPLEMENTATION ... / .
        C: USER alice
        S: -ERR [AUTH] USER command only available under a layer
    """
    capa = [b"EXPIRE NEVER", b"LOGIN-DELAY 0", b"TOP", b"UIDL", b"PIPELINING", b"RESP-CODES", b"AUTH-RESP-CODE"]
    server = start_evil_pop3(MAILS, capa=capa, user_refused=b"-ERR [AUTH] USER command only available under a layer")
    try:
        with pytest.raises(TlsRequiredError, match="CAPA lists no USER.*the password was not sent"):
            Ingest(archive, workers=0).run(_importer(server))
    finally:
        server.stop()
    assert b"PASS ***" not in server.commands and server.commands.count(b"USER evil") == 1
