"""Real TSA variety (part b): an intermediate CA in the token or in the CA file, --policy pinning,
ESSCertID v1 (SHA-1) beside v2, tokens signed with ECDSA and with RSA; (part c) HTTP quirks that leave the
batch pending for the next run, a token without any certificate checked offline in an evidence bundle, a TSA
serving several policies. The second local TSA (RSA root, ECDSA
intermediate, ECDSA TSA certificate) answers; for some tests its signer is swapped for another openssl
configuration on the same PKI."""
from __future__ import annotations

import contextlib
import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from tests.integration.verify_support import sql
from toolkit.archive import Archive

SAMPLE = REPO / "sample_data" / "eml" / "2019"


@contextlib.contextmanager
def signer(server, **kw):
    """The TSA server answering with ``Tsa(server.pki, **kw)`` for the duration."""
    from services.tsa import Tsa

    old = server.tsa
    server.tsa = Tsa(server.pki, name=f"variant-{hashlib.sha256(repr(sorted(kw.items())).encode()).hexdigest()[:12]}", **kw)
    try:
        yield server.tsa
    finally:
        server.tsa = old


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    mailarchive(h, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(h, "import", "eml", str(SAMPLE))
    return h


def _tokens(home: Path) -> list[tuple]:
    with Archive.open(home) as a, a.catalog.reading() as con:
        return con.execute("SELECT batch_id, status, token FROM stamp_batches ORDER BY batch_id").fetchall()


def _asn1(token: bytes, tmp_path: Path) -> str:
    p = tmp_path / "t.tsr"
    p.write_bytes(token)
    return subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(p)], capture_output=True, text=True,
                          check=True).stdout


def test_intermediate_in_the_ca_file(home, tmp_path, tsa_b):
    """Tokens without the intermediate: the root alone cannot verify them (the batch stays pending, exit 3);
    a CA file holding root and intermediate can, and `verify --full` exits 0."""
    root_only = tsa_b.ca_cert_path
    both = tmp_path / "root-and-intermediate.pem"
    both.write_bytes(root_only.read_bytes() + tsa_b.pki.intermediate_cert.read_bytes())
    with signer(tsa_b, chain_in_token=False):
        p = mailarchive(home, "timestamp", "run", "--tsa-url", tsa_b.url, "--ca-cert", str(root_only), "--all", check=3)
        assert "unable to get local issuer certificate" in p.stderr and "stays pending" in p.stderr
        assert [s for _, s, _ in _tokens(home)] == ["pending"]
        mailarchive(home, "timestamp", "run", "--tsa-url", tsa_b.url, "--ca-cert", str(both), "--all")
    assert [s for _, s, _ in _tokens(home)] == ["stamped"]
    mailarchive(home, "verify", "--full")


def test_intermediate_in_the_token(home, tsa_b):
    """The default second TSA sends its intermediate in every token; the root alone is the trust anchor."""
    mailarchive(home, "timestamp", "run", "--tsa-url", tsa_b.url, "--ca-cert", str(tsa_b.ca_cert_path), "--all")
    mailarchive(home, "verify", "--full")


def test_ess_cert_id_v1_and_v2(home, tmp_path, tsa, tsa_b):
    """A TSA signing an ESSCertID (v1, SHA-1) attribute and one signing ESSCertIDv2: both verify."""
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_b.url, "--ca-cert", str(tsa_b.ca_cert_path))
    with signer(tsa_b, ess_cert_id_alg="sha1"):
        mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml" / "2020"))
    mailarchive(home, "timestamp", "run", "--all")
    (_, _, v1), (_, _, v2) = _tokens(home)
    t1, t2 = _asn1(bytes(v1), tmp_path), _asn1(bytes(v2), tmp_path)
    assert ":id-smime-aa-signingCertificate\n" in t1 and "signingCertificateV2" not in t1
    assert "signingCertificateV2" in t2
    mailarchive(home, "verify", "--full")


def test_policy_pinning(home, tsa):
    """The pinned policy is asked for in the request: the test TSA, which serves only its own, refuses it
    (unacceptedPolicy); a TSA that ignores the request's policy answers a token that is refused."""
    from services.tsa import POLICY_OID

    p = mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path),
                    "--policy", "1.2.3.4", "--all", check=3)
    assert "unacceptedPolicy" in p.stderr and tsa.url in p.stderr
    tsa.strip = {"policy"}
    try:
        p = mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path), "--all",
                        check=3)
    finally:
        tsa.strip = set()
    assert "pinned policy is 1.2.3.4" in " ".join(p.stderr.split())
    assert [s for _, s, _ in _tokens(home)] == ["pending"]
    mailarchive(home, "timestamp", "run", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path),
                "--policy", POLICY_OID, "--all")
    (ca,) = mailarchive(home, "timestamp", "ca", "list", json_out=True).result["cas"]
    assert ca["policy"] == POLICY_OID
    mailarchive(home, "verify", "--full")
    bad = mailarchive(home, "timestamp", "run", "--policy", "not-an-oid", check=2)
    assert "not a dotted OID" in bad.stderr
    # a pinned policy that the batch's token does not carry is a finding naming the batch
    sql(home, "UPDATE tsa_cas SET policy = '1.2.3.4'")
    r = mailarchive(home, "verify", "--full", json_out=True, check=1).result
    (f06,) = [c for c in r["checks"] if c["id"] == "F06"]
    assert f06["count"] == 1 and f06["examples"][0]["detail"].startswith("stamp batch 1:")
    assert "policy" in f06["examples"][0]["detail"]


def test_ecdsa_and_rsa_signed_tokens(tmp_path):
    """Tokens signed with an ECDSA key (the local TSAs) and with an RSA key both verify, and each fails against
    the other's CA."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from services.tsa import Tsa, make_pki, query_for
    from verify.tokens import parse_fields, verify_token

    root = hashlib.sha256(b"a batch root").digest()
    out = {}
    for kind, rsa_tsa in (("ecdsa", False), ("rsa", True)):
        pki = make_pki(tmp_path / kind, kind, rsa_tsa=rsa_tsa)
        tsr = Tsa(pki).reply(query_for(root))
        out[kind] = (pki, tsr)
        chk = verify_token(tsr, root, pki.ca_cert.read_bytes())
        assert chk.ok, chk.problems
        resp = parse_fields(tsr).response
        from cryptography import x509

        (der,) = list(resp.signed_data.certificates)
        key = x509.load_der_x509_certificate(der).public_key()
        assert isinstance(key, rsa.RSAPublicKey if rsa_tsa else ec.EllipticCurvePublicKey)
    assert not verify_token(out["rsa"][1], root, out["ecdsa"][0].ca_cert.read_bytes()).ok
    assert not verify_token(out["ecdsa"][1], root, out["rsa"][0].ca_cert.read_bytes()).ok


def test_quirky_tsa_answers_keep_the_batch_pending_and_the_run_resumes(home, tsa_ok):
    """A redirect, a TSA too slow for --timeout and a login page instead of a token: each run exits 3 naming
    the TSA and the reason (no traceback), nothing is recorded; the next run stamps the same batch."""
    args = ("timestamp", "run", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path), "--all")
    moved = tsa_ok.url.rsplit("/", 1)[0] + "/moved-tsa"
    for mode, reason in (("redirect", f"redirects to {moved} (HTTP 307"), ("drip", "did not answer within 1 s"),
                         ("html", "bytes of text/html beginning '<html>")):
        tsa_ok.mode = mode
        p = mailarchive(home, *args, "--timeout", "1", "--retries", "0", check=3)
        err = " ".join(p.stderr.split())
        assert "stays pending" in err and tsa_ok.url in err and reason in err, err
        assert "Traceback" not in p.stderr
        if mode == "redirect":
            assert f"give it with --tsa-url {moved}" in err
        assert [(s, t) for _, s, t in _tokens(home)] == [("pending", None)]
    assert [m for m, _, _ in tsa_ok.seen] == ["POST"] * 3  # one attempt each, and the redirect not followed
    tsa_ok.mode = "ok"
    mailarchive(home, *args)
    assert [s for _, s, _ in _tokens(home)] == ["stamped"]
    mailarchive(home, "verify", "--full")


def test_a_token_without_certificates_verifies_offline_with_the_full_chain(home, tmp_path, tsa_b):
    """A TSA that sends no certificate at all (certReq ignored, no intermediate), signs with SHA-512, gives no
    accuracy nor TSA name, orders, writes milliseconds and answers grantedWithMods: stamped and verified with a CA file holding root,
    intermediate and TSA certificate; its evidence verifies offline with that file, and with the root alone
    fails naming the missing certificate. The openssl command VERIFY.txt gives the auditor verifies it too."""
    pki = tsa_b.pki
    chain = tmp_path / "root-intermediate-tsa.pem"
    chain.write_bytes(pki.ca_cert.read_bytes() + pki.intermediate_cert.read_bytes() + pki.tsa_cert.read_bytes())
    config = {"signer_digest": "sha512", "accuracy": None, "tsa_name": "no", "ordering": "yes",
              "clock_precision_digits": "3"}
    tsa_b.strip, tsa_b.mode = {"cert_req"}, "mods"  # and its status is grantedWithMods
    try:
        with signer(tsa_b, chain_in_token=False, config=config):
            mailarchive(home, "timestamp", "run", "--tsa-url", tsa_b.url, "--ca-cert", str(chain), "--all")
    finally:
        tsa_b.strip, tsa_b.mode = set(), "ok"
    from verify.tokens import parse_fields

    ((_, status, token),) = _tokens(home)
    assert status == "stamped" and parse_fields(bytes(token)).bag == []  # not one certificate in the token
    mailarchive(home, "verify", "--full")
    ev = tmp_path / "evidence"
    mailarchive(home, "export", "evidence", str(ev))
    ok = mailarchive(home, "verify-evidence", str(ev), "--ca-cert", str(chain), json_out=True).result
    assert all(not b["problems"] for b in ok["bundles"]) and ok["bundles"]
    bundle = next(ev.rglob("VERIFY.txt")).parent  # the auditor's openssl step, as VERIFY.txt words it
    (cmd,) = [ln.split() for ln in (bundle / "VERIFY.txt").read_text().splitlines() if "openssl ts -verify" in ln]
    v = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True)
    assert "Verification: OK" in v.stdout, (cmd, v.stderr)
    bad = mailarchive(home, "verify-evidence", str(ev), "--ca-cert", str(pki.ca_cert), json_out=True, check=1).result
    assert all(any("carries no TSA certificate" in p for p in b["problems"]) for b in bad["bundles"])


def test_a_tsa_of_several_policies_answers_under_the_pinned_one(home, tsa_b):
    """The request asks for the pinned policy; a TSA serving it beside its default answers under it (before,
    the request asked for none, the default came back, and the batch stayed pending at every run)."""
    other = "1.3.6.1.4.1.55555.1.7"
    with signer(tsa_b, config={"other_policies": other}):
        mailarchive(home, "timestamp", "run", "--tsa-url", tsa_b.url, "--ca-cert", str(tsa_b.ca_cert_path),
                    "--policy", other, "--all")
    assert [s for _, s, _ in _tokens(home)] == ["stamped"]
    (ca,) = mailarchive(home, "timestamp", "ca", "list", json_out=True).result["cas"]
    assert ca["policy"] == other
    mailarchive(home, "verify", "--full")
