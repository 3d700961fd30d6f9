"""``import imap`` against a real Dovecot (docs/reliability.md D1, D2, D4, D5, D7, D8, D9, D10, D12).

Mail is loaded with IMAP APPEND (flags, INTERNALDATE with a zone, modified
UTF-7 folder names) or written straight into the Maildir for bulk; faults come
from a TCP proxy between the importer and Dovecot.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import imaplib
import json
import os
import ssl
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from importers.imap import SEARCH_CHUNK, ImapImporter, search_chunks
from importers.netutil import CertificateError, SourceAuthError, TlsRequiredError
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.errors import ExitCode, SourceError
from toolkit.catalog import retention
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.retrieval import read_messages, select_messages

TZ = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _mail(n: int, body: bytes = b"", subject: str = "", extra: bytes = b"") -> bytes:
    subject = subject or f"message {n}"
    return (
        f"From: Sender {n} <s{n}@example.org>\r\nTo: r@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <imap-{n}-{os.urandom(4).hex()}@example.org>\r\nDate: Mon, 7 Jan 2019 09:15:00 +0000\r\n"
    ).encode() + extra + b"\r\n" + (body or f"body {n}\r\n".encode())


def _client(dovecot, user, password) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=ssl.create_default_context(cafile=str(dovecot.ca_cert_path)), timeout=30)
    c.login(user, password)
    return c


def _flag_snapshot(dovecot, user, password) -> dict:
    """{folder: {uid: sorted flags}} read with EXAMINE (changes nothing itself)."""
    c = _client(dovecot, user, password)
    try:
        snap = {}
        for flags, _, name in c.list_folders():
            if b"\\Noselect" in flags:
                continue
            c.select_folder(name, readonly=True)
            uids = c.search()
            snap[name] = {u: sorted(f for f in fl if f != b"\\Recent") for u, fl in c.get_flags(uids).items()} if uids else {}
        return snap
    finally:
        c.logout()


def _importer(dovecot, user, password, port=None, scheme="imaps", **kw) -> ImapImporter:
    port = port or (dovecot.imaps_port if scheme == "imaps" else dovecot.imap_port)
    kw.setdefault("ca_file", str(dovecot.ca_cert_path))
    kw.setdefault("backoff", 0.05)
    return ImapImporter(f"{scheme}://{user}@127.0.0.1:{port}", password, **kw)


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    yield a
    a.close()


def _stored(archive) -> dict[str, bytes]:
    out = {}
    for m, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), data
        out[hashlib.sha256(data).hexdigest()] = data
    return out


# -- acceptance 1, 2, 3 through the CLI ----------------------------------------------------------------
def test_all_folders_byte_exact_with_folder_flags_internaldate_and_no_flag_change(dovecot, mail_user, tmp_path):
    """Acceptance 1 + 2 (D8, D10): nested and non-ASCII folders, flags, 8-bit and a 5 MB mail; rerun archives 0."""
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    big_body = b"".join(b"line %07d of a large attachment-like body .......................\r\n" % i for i in range(80_000))
    assert len(big_body) > 5_000_000
    plan = [  # folder, mail, flags, internal date
        ("INBOX", _mail(1), (b"\\Seen",), dt.datetime(2019, 1, 7, 9, 15, 1, tzinfo=TZ)),
        ("INBOX", _mail(2, "Grüße aus Köln – 8 bit\r\n".encode(), extra=b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"), (), dt.datetime(2020, 2, 29, 23, 59, 59, tzinfo=dt.timezone.utc)),
        ("Archiv/2020", _mail(3), (b"\\Flagged", b"\\Answered"), dt.datetime(2020, 6, 1, 12, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-7)))),
        ("Archiv/2020/Q4", _mail(4), (b"$Label1",), dt.datetime(2020, 12, 31, 0, 0, 0, tzinfo=TZ)),
        ("Entwürfe", _mail(5, subject="Entwurf"), (b"\\Draft",), dt.datetime(2021, 3, 3, 3, 3, 3, tzinfo=TZ)),
        ("Ümlaut & Co/日本語 x", _mail(6, big_body), (b"\\Seen", b"\\Flagged"), dt.datetime(2022, 4, 4, 4, 4, 4, tzinfo=TZ)),
    ]
    try:
        for folder, raw, flags, when in plan:
            if folder != "INBOX" and not c.folder_exists(folder):
                c.create_folder(folder)  # imapclient encodes modified UTF-7
            c.append(folder, raw, flags=flags, msg_time=when)
    finally:
        c.logout()
    before = _flag_snapshot(dovecot, user, pw)

    home = tmp_path / "home"
    env = {"MAILARCHIVE_IMAP_PASSWORD": pw}
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    url = f"imap://{user}@127.0.0.1:{dovecot.imap_port}"
    r = mailarchive(home, "import", "imap", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True).result
    assert (r["seen"], r["archived"], r["errors"]) == (6, 6, 0)
    per_folder = {f["folder"]: f for f in r["folders"]}
    assert set(per_folder) == {f for f, *_ in plan}
    assert per_folder["Archiv/2020"]["archived"] == 1 and per_folder["INBOX"]["seen"] == 2

    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    exported = {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.eml")}
    assert exported == {hashlib.sha256(raw).hexdigest() for _, raw, _, _ in plan}

    q = mailarchive(
        home, "sql",
        "SELECT s.folder, s.flags, epoch(s.internal_date) AS sdate, epoch(m.internal_date) AS mdate, m.subject "
        "FROM sightings s JOIN messages m USING (msg_id) ORDER BY m.subject",
        "--format", "json",
    )
    rows = {row["subject"]: row for row in json.loads(q.stdout)}
    for folder, raw, flags, when in plan:
        subject = raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
        row = rows[subject]
        assert row["folder"] == folder
        assert row["flags"] == (" ".join(sorted(f.decode() for f in flags)) or None)
        assert row["sdate"] == row["mdate"] == when.timestamp()  # the instant, zone included

    assert _flag_snapshot(dovecot, user, pw) == before  # D8: EXAMINE + BODY.PEEK changed nothing

    again = mailarchive(home, "import", "imap", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True).result
    assert (again["seen"], again["archived"]) == (0, 0)  # acceptance 3: only new mail is fetched


def test_j9_no_or_unparsable_date_falls_back_to_internaldate_and_is_flagged(dovecot, mail_user, archive):
    """RELIABILITY J9 over IMAP: a mail without a Date header, with a garbage one, with ``Date: 0``: the
    catalog keeps no sent date (the header says none), the server's INTERNALDATE as internal date, and the
    flag ``date-from-imap-internaldate``; the date filters of the exports use that date. A far-future Date
    stays the sent date (flagged ``date-implausible``), but its retention clock is the INTERNALDATE; a good
    Date gets no fallback flag and counts from itself."""
    from exporters.filters import Filters, select

    user, pw = mail_user
    when = {  # subject -> (Date header line or None, INTERNALDATE)
        "no date": (None, dt.datetime(2016, 3, 4, 5, 6, 7, tzinfo=TZ)),
        "garbage date": (b"Date: the day after the party\r\n", dt.datetime(2017, 8, 9, 10, 11, 12, tzinfo=dt.timezone.utc)),
        "zero date": (b"Date: 0\r\n", dt.datetime(2018, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
        "far future": (b"Date: Fri, 1 Jan 2100 00:00:00 +0000\r\n", dt.datetime(2018, 6, 1, 0, 0, 0, tzinfo=dt.timezone.utc)),
        "good date": (b"Date: Mon, 7 Jan 2019 09:15:00 +0000\r\n", dt.datetime(2019, 1, 7, 9, 20, 0, tzinfo=dt.timezone.utc)),
    }
    c = _client(dovecot, user, pw)
    try:
        for n, (subject, (date_line, internal)) in enumerate(when.items()):
            head, rest = _mail(n, subject=subject).split(b"Date: ", 1)
            raw = head + (date_line or b"") + rest.split(b"\r\n", 1)[1]
            c.append("INBOX", raw, msg_time=internal)
    finally:
        c.logout()
    s = Ingest(archive).run(_importer(dovecot, user, pw))
    assert (s.seen, s.archived, s.errors) == (5, 5, 0)
    with archive.catalog.reading() as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT subject, sent_date, internal_date, defects FROM messages").fetchall()}
    for subject in ("no date", "garbage date", "zero date"):
        sent, internal, defects = rows[subject]
        assert sent is None, subject
        assert internal == when[subject][1], (subject, internal)
        flags = defects.split(",")
        assert "date-from-imap-internaldate" in flags, (subject, flags)
        assert ("date-missing" if subject == "no date" else "date-unparsable") in flags, (subject, flags)
    sent, internal, defects = rows["far future"]
    assert sent.year == 2100 and "date-implausible" in defects and "date-from-" not in defects
    assert "date-from-" not in (rows["good date"][2] or "")
    # the retention clock (docs/retention.md): the far-future mail counts from its INTERNALDATE, not from 2100
    with archive.catalog.writing() as con:
        retention.set_policy(con, "domain", "example.org", 5, "lead")
        keep = {m["message_id"]: m for m in retention.report(con, {}, dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc))["mails"]}
        by_subject = dict(con.execute("SELECT subject, message_id FROM messages").fetchall())
    far, good = keep[by_subject["far future"]], keep[by_subject["good date"]]
    assert (far["date"], far["date_kind"], far["state"]) == (when["far future"][1], "internal", "deletable")
    assert far["deletable_from"] == dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc)
    assert (good["date"], good["date_kind"]) == (dt.datetime(2019, 1, 7, 9, 15, tzinfo=dt.timezone.utc), "sent")
    # the date the exports select by is the INTERNALDATE for the three: one day's window finds each
    for subject in ("no date", "garbage date", "zero date"):
        day = when[subject][1].astimezone(dt.timezone.utc).date().isoformat()
        got = select(archive, Filters(since=day, until=day))
        assert [m.subject for m in got] == [subject], (subject, [m.subject for m in got])


# -- acceptance 3: incremental reruns and a recreated folder (D5) --------------------------------------
def test_rerun_fetches_only_new_mail_and_recreated_folder_gives_no_duplicates_D5(dovecot, mail_user, archive):
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    c.create_folder("Projekt")
    mails = [_mail(i) for i in range(5)]
    for m in mails[:3]:
        c.append("Projekt", m)
    c.append("INBOX", mails[3])

    s1 = Ingest(archive).run(_importer(dovecot, user, pw))
    assert (s1.seen, s1.archived, s1.status) == (4, 4, "complete")
    s2 = Ingest(archive).run(_importer(dovecot, user, pw))
    assert (s2.seen, s2.archived) == (0, 0)

    c.append("Projekt", mails[4])
    s3 = Ingest(archive).run(_importer(dovecot, user, pw))
    assert (s3.seen, s3.archived) == (1, 1)
    s4 = Ingest(archive).run(_importer(dovecot, user, pw))
    assert s4.seen == 0  # the cursor survived a run that found nothing new

    # D5: the folder is deleted and recreated with the same mails: a new UIDVALIDITY
    c.delete_folder("Projekt")
    c.create_folder("Projekt")
    for m in (mails[0], mails[1], mails[2], mails[4]):
        c.append("Projekt", m)
    c.logout()
    rep = ListReporter()
    s5 = Ingest(archive, rep).run(_importer(dovecot, user, pw))
    assert (s5.seen, s5.archived, s5.duplicates) == (4, 0, 4)
    assert any("UIDVALIDITY changed" in m for m in rep.infos)
    with archive.catalog.reading() as con:
        assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 5


def test_folder_selection_and_exclude(dovecot, mail_user, archive):
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    for folder in ("Junk", "Junk/Old", "Keep"):
        c.create_folder(folder)
        c.append(folder, _mail(hash(folder) % 1000))
    c.logout()
    s = Ingest(archive).run(_importer(dovecot, user, pw, exclude=["Junk*"]))
    assert s.seen == 1
    with archive.catalog.reading() as con:
        assert con.execute("SELECT DISTINCT folder FROM sightings").fetchall() == [("Keep",)]
    s = Ingest(archive).run(_importer(dovecot, user, pw, folders=["Junk/Old"]))
    assert s.seen == 1
    with pytest.raises(SourceError, match="no selectable folder"):
        list(_importer(dovecot, user, pw, folders=["Nope"]).scan(None, ListReporter()))


# -- D7: a folder larger than one SEARCH chunk -------------------------------------------------------------
def test_many_messages_search_is_chunked_D7(dovecot, mail_user):
    """6,000 tiny mails written straight into the Maildir; UID SEARCH runs in chunks of 1,000 sequence numbers
    (the default chunk of 50,000 keeps one reply below imaplib's line limit; bench/bench_imap.py runs 20,000)."""
    user, pw = mail_user
    dovecot.doveadm("mailbox", "create", "-u", user, "Bulk")
    cur = dovecot.maildir(user) / ".Bulk" / "cur"
    n = 6_000
    for i in range(n):
        p = cur / f"{1_600_000_000 + i}.M{i}P1.test:2,"
        p.write_bytes(b"Subject: bulk %d\n\nx\n" % i)
        os.chown(p, 10143, 10143)
    imp = _importer(dovecot, user, pw, folders=["Bulk"], search_chunk=1_000, batch=1000)
    seen_uids = [int(it.ref.rsplit("=", 1)[1]) for it in imp.scan(None, ListReporter())]
    assert len(seen_uids) == n and len(set(seen_uids)) == n
    assert seen_uids == sorted(seen_uids)
    # resuming from the middle fetches only the rest
    cursor = {"folders": {}, "current": ["Bulk", int(_uidvalidity(dovecot, user, pw, "Bulk")), seen_uids[4_321]]}
    rest = list(_importer(dovecot, user, pw, folders=["Bulk"], search_chunk=1_000, batch=1000).scan(cursor, ListReporter()))
    assert len(rest) == n - 4_322
    assert search_chunks(120_001) == [(1, 50_000), (50_001, 100_000), (100_001, 120_001)]
    assert SEARCH_CHUNK * len(" 4294967295") < imaplib._MAXLINE  # one chunk's reply always fits


def _uidvalidity(dovecot, user, pw, folder) -> int:
    c = _client(dovecot, user, pw)
    try:
        return c.select_folder(folder, readonly=True)[b"UIDVALIDITY"]
    finally:
        c.logout()


# -- faults through the proxy ---------------------------------------------------------------------------------
def test_reset_during_large_fetch_reconnects_and_stores_complete_mail_once_D1(dovecot, mail_user, archive, fault_proxy):
    user, pw = mail_user
    big = _mail(1, os.urandom(600_000).hex().encode() + b"\r\n")
    small = [_mail(i) for i in range(2, 6)]
    c = _client(dovecot, user, pw)
    c.append("INBOX", small[0])
    c.append("INBOX", big)
    for m in small[1:]:
        c.append("INBOX", m)
    c.logout()
    proxy = fault_proxy("127.0.0.1", dovecot.imaps_port)
    # the listing's connection is open by then: the next one, the pack task's, dies inside the big literal
    imp = _importer(dovecot, user, pw, port=proxy.port,
                    after_search=lambda *_: proxy.mode("reset", after=500_000, times=1))
    s = Ingest(archive).run(imp)
    assert proxy.faults_fired == 1 and proxy.connections == 3  # the listing, the task's, its reconnect
    assert (s.status, s.seen, s.archived, s.errors) == ("complete", 5, 5, 0)
    stored = _stored(archive)
    assert set(stored) == {hashlib.sha256(m).hexdigest() for m in [big, *small]}  # complete, byte-exact, once


def test_silent_server_times_out_and_the_run_ends_in_bounded_time_then_resumes_D2(dovecot, mail_user, archive, fault_proxy):
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    mails = [_mail(i, os.urandom(30_000).hex().encode() + b"\r\n") for i in range(10)]
    for m in mails:
        c.append("INBOX", m)
    c.logout()
    proxy = fault_proxy("127.0.0.1", dovecot.imaps_port)
    proxy.mode("blackhole", after=150_000)  # every connection goes silent after 150 kB
    imp = _importer(dovecot, user, pw, port=proxy.port, timeout=1.0, retries=2, batch=3)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="gave up after 3 attempts"):
        Ingest(archive).run(imp)
    assert time.monotonic() - t0 < 15
    assert proxy.connections == 4 and proxy.faults_fired == 3  # the listing's (below 150 kB), then 3 fetch attempts
    with archive.catalog.reading() as con:
        partial = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        status = con.execute("SELECT status FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    assert status == "failed" and partial < 10  # the open pack was dropped; committed packs stay

    proxy.mode("pass")
    s = Ingest(archive).run(_importer(dovecot, user, pw, port=proxy.port, timeout=5))
    assert s.status == "complete" and s.seen == 10 - partial  # resumed after the last committed UID
    assert set(_stored(archive)) == {hashlib.sha256(m).hexdigest() for m in mails}


def test_slow_link_still_completes(dovecot, mail_user, archive, fault_proxy):
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    c.append("INBOX", _mail(1, b"y" * 20_000 + b"\r\n"))
    c.logout()
    proxy = fault_proxy("127.0.0.1", dovecot.imaps_port)
    proxy.mode("slow", delay=0.002)
    s = Ingest(archive).run(_importer(dovecot, user, pw, port=proxy.port, timeout=2))
    assert (s.status, s.archived) == ("complete", 1)


def test_message_expunged_between_search_and_fetch_is_listed_not_fatal_D4(dovecot, mail_user, archive):
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    for i in range(5):
        c.append("INBOX", _mail(i))
    c.logout()
    gone: list[int] = []

    def expunge_one(folder, uids):
        other = _client(dovecot, user, pw)
        other.select_folder(folder)
        other.delete_messages([uids[2]])
        other.expunge()
        other.logout()
        gone.append(uids[2])

    s = Ingest(archive).run(_importer(dovecot, user, pw, after_search=expunge_one))
    assert s.status == "complete"
    assert (s.archived, s.errors) == (4, 1)
    assert len(s.problems) == 1
    assert s.problems[0]["ref"].endswith(f";UID={gone[0]}")
    assert "source changed during import" in s.problems[0]["message"]


# -- D9: TLS ----------------------------------------------------------------------------------------------------------
def test_stripped_starttls_is_refused_and_the_password_never_sent_D9(dovecot, mail_user, tmp_path, fault_proxy):
    user, pw = mail_user
    proxy = fault_proxy("127.0.0.1", dovecot.imap_port)
    proxy.mode("strip")
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(
        home, "import", "imap", f"imap://{user}@127.0.0.1:{proxy.port}", "--ca-file", str(dovecot.ca_cert_path),
        env={"MAILARCHIVE_IMAP_PASSWORD": pw}, check=int(ExitCode.OPERATIONAL),
    )
    assert "STARTTLS" in p.stderr and "password was not sent" in p.stderr
    assert proxy.connections == 1
    assert pw.encode() not in proxy.client_bytes and b"LOGIN" not in proxy.client_bytes.upper()


def test_certificate_must_verify_unless_insecure_D9(dovecot, mail_user):
    user, pw = mail_user
    for scheme in ("imaps", "imap"):
        with pytest.raises(CertificateError, match="does not verify"):
            list(_importer(dovecot, user, pw, scheme=scheme, ca_file=None).scan(None, ListReporter()))
    assert list(_importer(dovecot, user, pw, ca_file=None, insecure=True).scan(None, ListReporter())) == []


def test_plaintext_only_with_the_explicit_flag(dovecot, mail_user, fault_proxy):
    user, pw = mail_user
    proxy = fault_proxy("127.0.0.1", dovecot.imap_port)
    proxy.mode("strip")
    with pytest.raises(TlsRequiredError):
        list(_importer(dovecot, user, pw, scheme="imap", port=proxy.port).scan(None, ListReporter()))
    assert list(_importer(dovecot, user, pw, scheme="imap", port=proxy.port, allow_plaintext=True).scan(None, ListReporter())) == []


# -- D12: wrong password --------------------------------------------------------------------------------------------
def test_wrong_password_exits_with_its_own_status_after_at_most_one_retry_D12(dovecot, mail_user, tmp_path, fault_proxy):
    user, _pw = mail_user
    proxy = fault_proxy("127.0.0.1", dovecot.imap_port)
    proxy.mode("strip")  # plaintext, so the proxy can count the LOGIN commands
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    p = mailarchive(
        home, "import", "imap", f"imap://{user}@127.0.0.1:{proxy.port}", "--allow-plaintext",
        env={"MAILARCHIVE_IMAP_PASSWORD": "wrong-password"}, check=int(ExitCode.AUTH_FAILED),
    )
    assert ExitCode.AUTH_FAILED == 4 and "login rejected" in p.stderr
    assert "wrong-password" not in p.stderr + p.stdout
    assert 1 <= bytes(proxy.client_bytes).upper().count(b" LOGIN ") <= 2


def test_wrong_password_api_raises_source_auth_error(dovecot, mail_user):
    user, _ = mail_user
    imp = _importer(dovecot, user, "nope")
    with pytest.raises(SourceAuthError):
        list(imp.scan(None, ListReporter()))
    assert imp.logins == 1
