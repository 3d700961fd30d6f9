"""The shared network code (toolkit/net) against a real Dovecot: the IMAP exporter connects, checks
certificates and refuses plaintext exactly as the importer does, because both use the same code.

A STARTTLS server whose certificate is not trusted is refused on the first connection, with the
importer's message and exit status, and nothing is retried; a server whose STARTTLS was stripped on
the way gets no password from either.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from imapclient import IMAPClient

from exporters.imap import ImapTarget, export_imap
from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.errors import ExitCode
from toolkit.net.tls import CertificateError, TlsRequiredError, tls_context

MAIL = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: shared net\r\n"
        b"Message-ID: <shared-net-1@example.org>\r\nDate: Mon, 7 Jan 2019 09:15:00 +0000\r\n\r\nbody\r\n")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("netshared")
    (base / "eml").mkdir()
    (base / "eml" / "one.eml").write_bytes(MAIL)
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "medium"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(base / "eml"))
    return home


def _messages(dovecot, user, password) -> int:
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=tls_context(str(dovecot.ca_cert_path)), timeout=30)
    c.login(user, password)
    try:
        return sum(c.select_folder(name, readonly=True)[b"EXISTS"] for flags, _, name in c.list_folders()
                   if b"\\Noselect" not in flags and b"\\NonExistent" not in flags)
    finally:
        c.logout()


def test_export_starttls_to_an_untrusted_certificate_is_refused_at_once_like_the_import(home, dovecot, mail_user, fault_proxy):
    """No --ca-file: the test CA is not in the system store. The export stops on the first connection (the
    old exporter took the failed certificate check for a dropped link and retried it), with the same
    message and exit status as the import, and appends nothing."""
    user, pw = mail_user
    proxy = fault_proxy("127.0.0.1", dovecot.imap_port)
    url = f"imap://{user}@127.0.0.1:{proxy.port}"
    env = {"MAILARCHIVE_IMAP_PASSWORD": pw}
    exp = mailarchive(home, "export", "imap", url, "--retries", "2", env=env, check=int(ExitCode.OPERATIONAL))
    assert "the server certificate does not verify" in exp.stderr and "--ca-file" in exp.stderr, exp.stderr
    assert "gave up" not in exp.stderr
    assert proxy.connections == 1
    assert pw.encode() not in proxy.client_bytes
    imp = mailarchive(home, "import", "imap", url, "--retries", "2", env=env, check=int(ExitCode.OPERATIONAL))
    assert proxy.connections == 2

    def sentence(stderr: str) -> str:
        return re.search(r"127\.0\.0\.1:\d+: the server certificate does not verify[^\n]*", stderr).group(0)

    assert sentence(exp.stderr) == sentence(imp.stderr)
    assert _messages(dovecot, user, pw) == 0


def test_export_api_raises_the_importers_tls_errors(home, dovecot, mail_user, fault_proxy):
    """The library API: CertificateError for an untrusted STARTTLS certificate, TlsRequiredError (password
    not sent) when STARTTLS was stripped; with the CA the same export goes through STARTTLS and appends."""
    user, pw = mail_user
    archive = Archive.open(home)
    try:
        plain = ImapTarget("127.0.0.1", dovecot.imap_port, user, False)
        with pytest.raises(CertificateError, match="does not verify"):
            export_imap(archive, plain, pw, ssl_context=tls_context(None), retries=2, backoff=0.01)
        proxy = fault_proxy("127.0.0.1", dovecot.imap_port)
        proxy.mode("strip")
        stripped = ImapTarget("127.0.0.1", proxy.port, user, False)
        with pytest.raises(TlsRequiredError, match="password was not sent"):
            export_imap(archive, stripped, pw, ssl_context=tls_context(str(dovecot.ca_cert_path)), retries=2,
                        backoff=0.01)
        assert proxy.connections == 1 and pw.encode() not in proxy.client_bytes
        assert b"LOGIN" not in proxy.client_bytes.upper()
        s = export_imap(archive, plain, pw, ssl_context=tls_context(str(dovecot.ca_cert_path)))
        assert (s.selected, s.written, s.errors) == (1, 1, [])
    finally:
        archive.close()
    assert _messages(dovecot, user, pw) == 1


def test_link_errors_are_defined_once():
    """The failures that count as a dropped link have one definition, in toolkit/net/retry.py."""
    found = []
    for folder in ("toolkit", "importers", "exporters", "verify", "media_tools"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if re.search(r"^\s*LINK_ERRORS\b[^=\n]*=", path.read_text(encoding="utf-8"), re.M):
                found.append(path.relative_to(REPO).as_posix())
    assert found == ["toolkit/net/retry.py"]
