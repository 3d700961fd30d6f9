"""The careless user's typos in a URL: an unclosed IPv6 bracket or a port that is no port, in every place a
URL is typed (a source, a medium, a mirror, a TSA, a setting), is a usage error (exit 2) that names the URL,
never a traceback; a setting is refused when it is set, not at the next scheduled run. (Each of these ended
in Python's ValueError from urllib before.)"""
from __future__ import annotations

import pytest

from tests.cli import mailarchive

ENV = {"MAILARCHIVE_IMAP_PASSWORD": "x", "MAILARCHIVE_POP3_PASSWORD": "x", "MAILARCHIVE_SMB_PASSWORD": "x"}

TYPOS = [
    ("import", "imap", "imaps://alice@[mail.example.org"),
    ("import", "pop3", "pop3s://alice@[mail.example.org"),
    ("import", "eml", "smb://alice@[files/mail/2019"),
    ("import", "eml", "smb://alice@files:70000/mail/2019"),
    ("import", "mbox", "smb://alice@files:44S/mail/a.mbox"),
    ("media", "add", "smb://alice@files:abc/archive"),
    ("mirror", "smb://alice@[files/mirror"),
    ("config", "set", "mirror.dest", "smb://alice@[files/mirror"),
    ("config", "set", "timestamp.tsa_url", "http://[tsa.example.org/"),
    ("config", "set", "timestamp.tsa_url", "ftp://tsa.example.org/"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("urls")
    h = root / "home"
    mailarchive(h, "init", "--medium", str(root / "medium"), "--key-backup", str(root / "kb.txt"))
    return h


@pytest.mark.parametrize("args", TYPOS, ids=lambda a: " ".join(a[:2]) + " " + a[-1])
def test_a_url_typo_is_a_usage_error_naming_it(home, args):
    p = mailarchive(home, *args, env=ENV, check=2)
    assert "Traceback" not in p.stderr and args[-1] in p.stderr, p.stderr


def test_a_tsa_url_typo_is_refused_by_configure_and_run(home, tmp_path):
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "ca.pem"), "-subj", "/CN=typo test CA", "-days", "2"], check=True,
                   capture_output=True)
    for command in ("configure", "run"):
        for url in ("http://[tsa.example.org/", "http://tsa.example.org:port/"):
            p = mailarchive(home, "timestamp", command, "--tsa-url", url, "--ca-cert", str(tmp_path / "ca.pem"), check=2)
            assert "Traceback" not in p.stderr and url in p.stderr, p.stderr
    mailarchive(home, "config", "get", "timestamp.tsa_url", check=1)  # nothing was stored
