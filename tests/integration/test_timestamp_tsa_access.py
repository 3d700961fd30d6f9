"""Reaching real TSAs: HTTPS with its own TLS trust (--tls-ca-file), HTTP basic authentication
(MAILARCHIVE_TSA_PASSWORD or --password-file, user name in the URL), a rejected login exits 4 without retries,
`grantedWithMods` is accepted, `waiting` is retried with backoff, and each refusal gives a clear error."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures_tsa import TSA_PASSWORD
from tests.cli import mailarchive
from tests.corpora import REPO

SAMPLE = REPO / "sample_data" / "eml"


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    mailarchive(h, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(h, "import", "eml", str(SAMPLE / "2019"))
    return h


def _pending(home: Path) -> list[int]:
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    return [b["batch_id"] for b in st["pending_batches"]]


def test_https_with_basic_auth(home, tmp_path, tsa_https):
    s = tsa_https
    base = ["timestamp", "run", "--tsa-url", s.user_url, "--ca-cert", str(s.ca_cert_path), "--all"]
    # the server's TLS certificate is not in the system's trust store
    p = mailarchive(home, *base, env={"MAILARCHIVE_TSA_PASSWORD": TSA_PASSWORD}, check=3)
    assert "--tls-ca-file" in p.stderr and "not trusted" in " ".join(p.stderr.split())
    # a wrong password: exit 4, one request only (a login is never retried)
    before = s.posts
    p = mailarchive(home, *base, "--tls-ca-file", str(s.tls_ca_path), env={"MAILARCHIVE_TSA_PASSWORD": "wrong"}, check=4)
    assert "rejected the login as 'stamper'" in " ".join(p.stderr.split()) and s.posts == before + 1
    # no password at all: exit 4, saying where a password comes from
    p = mailarchive(home, *base, "--tls-ca-file", str(s.tls_ca_path), env={"MAILARCHIVE_TSA_PASSWORD": ""}, check=4)
    assert "MAILARCHIVE_TSA_PASSWORD" in p.stderr and "--password-file" in " ".join(p.stderr.split())
    assert _pending(home) == [1]
    # the password from a file
    pw = tmp_path / "tsa-password"
    pw.write_text(TSA_PASSWORD + "\n")
    mailarchive(home, *base, "--tls-ca-file", str(s.tls_ca_path), "--password-file", str(pw))
    assert _pending(home) == []
    # configured once (URL with user, TLS CA kept), then the environment variable
    mailarchive(home, "timestamp", "configure", "--tsa-url", s.user_url, "--ca-cert", str(s.ca_cert_path),
                "--tls-ca-file", str(s.tls_ca_path), env={"MAILARCHIVE_TSA_PASSWORD": TSA_PASSWORD})  # its test request logs in
    mailarchive(home, "import", "eml", str(SAMPLE / "2020"))
    mailarchive(home, "timestamp", "run", "--all", env={"MAILARCHIVE_TSA_PASSWORD": TSA_PASSWORD})
    mailarchive(home, "verify", "--full")
    for f in home.rglob("*"):  # the password is kept nowhere in the home
        if f.is_file():
            assert TSA_PASSWORD.encode() not in f.read_bytes(), f


def test_granted_with_mods_and_waiting(home, tsa):
    base = ["timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path), "--all"]
    try:
        # busy twice, then a token: two retries suffice
        tsa.mode, tsa.waiting_left = "ok", 2
        before = tsa.requests
        mailarchive(home, *base, "--retries", "2")
        assert tsa.requests == before + 3 and _pending(home) == []
        # always waiting: gives up after the retries, batch pending, exit 3
        mailarchive(home, "import", "eml", str(SAMPLE / "2020"))
        tsa.mode = "waiting"
        p = mailarchive(home, *base, "--retries", "1", check=3)
        err = " ".join(p.stderr.split())
        assert "'waiting'" in err and "after 2 attempts" in err and "stays pending" in err
        # grantedWithMods with a valid token: accepted
        tsa.mode = "mods"
        mailarchive(home, *base)
        assert _pending(home) == []
        # a rejection is not retried and says so
        mailarchive(home, "import", "eml", str(SAMPLE / "2021"))
        tsa.mode = "reject"
        before = tsa.requests
        p = mailarchive(home, *base, "--retries", "3", check=3)
        assert "status rejection" in " ".join(p.stderr.split()) and tsa.requests == before + 1
    finally:
        tsa.mode, tsa.waiting_left = "ok", 0
    mailarchive(home, *base)
    mailarchive(home, "verify", "--full")


def test_refusals_name_their_reason_and_only_transient_ones_are_retried(tsa):
    """A rejection with failInfo unacceptedPolicy names status, text and reason, at once; HTTP 500 is retried
    with doubling pauses (the pauses recorded, not slept) and the error says how often it was tried."""
    from verify.tsa_client import TsaAccess, TsaError, request_stamp

    root = bytes(range(32))
    pauses: list[float] = []
    try:
        tsa.mode = "reject-policy"
        before = tsa.requests
        with pytest.raises(TsaError) as exc:
            request_stamp(tsa.url, root, access=TsaAccess(retries=3), sleep=pauses.append)
        msg = str(exc.value)
        assert "status rejection: policy not supported" in msg and "unacceptedPolicy" in msg
        assert "does not support the requested policy" in msg
        assert tsa.requests == before + 1 and pauses == []
        tsa.mode = "http500"
        before = tsa.requests
        with pytest.raises(TsaError) as exc:
            request_stamp(tsa.url, root, access=TsaAccess(retries=3, backoff=0.5), sleep=pauses.append)
        assert "HTTP 500" in str(exc.value) and "after 4 attempts" in str(exc.value)
        assert tsa.requests == before + 4 and pauses == [0.5, 1.0, 2.0]
    finally:
        tsa.mode = "ok"
