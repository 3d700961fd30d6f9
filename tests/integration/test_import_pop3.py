"""``import pop3`` against a real Dovecot (docs/reliability.md D8, D11, D12).

Bodies with '.'-lines and lines far beyond poplib's 2048-byte limit come back
byte-exact; POP3 never deletes, and reruns fetch only new mail (UIDL cursor).
"""
from __future__ import annotations

import hashlib
import ssl

import pytest
from imapclient import IMAPClient

from importers.netutil import SourceAuthError, TlsRequiredError
from importers.pop3 import Pop3Importer
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.retrieval import read_messages, select_messages


def _mail(n: int, body: bytes) -> bytes:
    return (f"From: p{n}@example.org\r\nTo: r@example.org\r\nSubject: pop {n}\r\n"
            f"Message-ID: <pop-{n}@example.org>\r\n\r\n").encode() + body


MAILS = [
    _mail(1, b"plain\r\n"),
    _mail(2, b".\r\n..\r\n.leading dot\r\n..two dots\r\n. \r\nend\r\n"),
    _mail(3, b"x" * 5000 + b"\r\n." + b"y" * 70_000 + b"\r\n"),  # lines far beyond poplib's _MAXLINE
    _mail(4, "8-bit: Grüße\r\n".encode()),
    _mail(5, b"no final newline"),
]


def _client(dovecot, user, pw) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=ssl.create_default_context(cafile=str(dovecot.ca_cert_path)), timeout=30)
    c.login(user, pw)
    return c


def _state(dovecot, user, pw) -> dict:
    c = _client(dovecot, user, pw)
    try:
        c.select_folder("INBOX", readonly=True)
        return {u: sorted(f for f in fl if f != b"\\Recent") for u, fl in c.get_flags(c.search()).items()}
    finally:
        c.logout()


def _load(dovecot, user, pw, mails) -> None:
    c = _client(dovecot, user, pw)
    for m in mails:
        c.append("INBOX", m)
    c.logout()


def _importer(dovecot, user, pw, port=None, scheme="pop3s", **kw) -> Pop3Importer:
    port = port or (dovecot.pop3s_port if scheme == "pop3s" else dovecot.pop3_port)
    kw.setdefault("ca_file", str(dovecot.ca_cert_path))
    kw.setdefault("backoff", 0.05)
    return Pop3Importer(f"{scheme}://{user}@127.0.0.1:{port}", pw, **kw)


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    yield a
    a.close()


def _stored(archive) -> set[str]:
    out = set()
    for _m, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), data
        out.add(hashlib.sha256(data).hexdigest())
    return out


def _digests(mails) -> set[str]:
    return {hashlib.sha256(m if m.endswith(b"\r\n") else m).hexdigest() for m in mails}


def test_pop3_import_byte_exact_never_deletes_and_reruns_fetch_only_new_D8_D11(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    _load(dovecot, user, pw, MAILS)
    before = _state(dovecot, user, pw)
    home = tmp_path / "home"
    env = {"MAILARCHIVE_POP3_PASSWORD": pw}
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    url = f"pop3://{user}@127.0.0.1:{dovecot.pop3_port}"  # STLS
    r = mailarchive(home, "import", "pop3", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True).result
    assert (r["seen"], r["archived"], r["errors"]) == (5, 5, 0)
    after = _state(dovecot, user, pw)
    assert after == before  # nothing deleted; RSET before QUIT leaves even \Seen alone on Dovecot

    with Archive.open(home) as archive:
        stored = _stored(archive)
    # Dovecot serves every line with CRLF: the one mail without a final newline comes back with one
    expected = {hashlib.sha256(m).hexdigest() for m in MAILS[:4]} | {hashlib.sha256(MAILS[4] + b"\r\n").hexdigest()}
    assert stored == expected

    again = mailarchive(home, "import", "pop3", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True).result
    assert (again["seen"], again["archived"]) == (0, 0)
    _load(dovecot, user, pw, [_mail(6, b"new\r\n")])
    third = mailarchive(home, "import", "pop3", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True).result
    assert (third["seen"], third["archived"]) == (1, 1)


def test_drop_during_retr_is_retried_and_the_bytes_are_exact_D11(dovecot, mail_user, archive, fault_proxy):
    user, pw = mail_user
    big = _mail(7, b"".join(b".%06d dot-stuffed line\r\n" % i for i in range(40_000)))
    _load(dovecot, user, pw, [MAILS[0], big, MAILS[1]])
    proxy = fault_proxy("127.0.0.1", dovecot.pop3s_port)
    proxy.mode("reset", after=300_000, times=1)
    imp = _importer(dovecot, user, pw, port=proxy.port)
    s = Ingest(archive).run(imp)
    assert proxy.faults_fired == 1 and imp.reconnects == 1
    assert (s.status, s.seen, s.archived, s.errors) == ("complete", 3, 3, 0)
    assert _stored(archive) == {hashlib.sha256(m).hexdigest() for m in (MAILS[0], big, MAILS[1])}


def test_stripped_stls_refused_password_not_sent_D9(dovecot, mail_user, fault_proxy):
    user, pw = mail_user
    proxy = fault_proxy("127.0.0.1", dovecot.pop3_port)
    proxy.mode("strip")
    with pytest.raises(TlsRequiredError):
        list(_importer(dovecot, user, pw, port=proxy.port, scheme="pop3").scan(None, ListReporter()))
    assert pw.encode() not in proxy.client_bytes and b"PASS" not in proxy.client_bytes


def test_wrong_password_is_not_retried_D12(dovecot, mail_user):
    user, _ = mail_user
    imp = _importer(dovecot, user, "wrong")
    with pytest.raises(SourceAuthError) as info:
        list(imp.scan(None, ListReporter()))
    assert imp.logins == 1 and info.value.exit_code == 4
