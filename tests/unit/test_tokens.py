"""RFC 3161 token verification (docs/reliability.md I1–I14) against the live local TSA, forged tokens and the f-rfc3161 corpus."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from services.tsa import POLICY_OID, Tsa, der_sort_certificates, forge_response, make_pki, query_for, tst_info_of
from verify.tokens import verify_token
from verify.tsa_client import TsaError, request_stamp

ROOT_A = hashlib.sha256(b"batch A").digest()
ROOT_B = hashlib.sha256(b"batch B").digest()


@pytest.fixture(scope="module")
def ca_pem(tsa) -> bytes:
    return tsa.ca_cert_path.read_bytes()


@pytest.fixture(scope="module")
def stamp_a(tsa):
    tsa.mode = "ok"
    return request_stamp(tsa.url, ROOT_A)


def tags(check) -> set[str]:
    return {p.split(":", 1)[0] for p in check.problems}


def test_i1_valid_token_verifies(stamp_a, ca_pem):
    tsr, nonce = stamp_a
    c = verify_token(tsr, ROOT_A, ca_pem, nonce=nonce)
    assert c.ok, c.problems
    assert c.second_opinion == "openssl: OK"
    assert abs(c.gen_time - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    assert c.serial and c.policy == POLICY_OID and c.nonce == nonce
    assert "test-tsa" in c.tsa_subject


def test_i1_pinned_tsa_certificate(tsa, stamp_a, ca_pem):
    """The CA plus the TSA certificate itself (pinned mode) verifies too."""
    tsr, nonce = stamp_a
    assert verify_token(tsr, ROOT_A, ca_pem + tsa.tsa_cert_path.read_bytes(), nonce=nonce).ok


def test_i2_changed_batch_content(stamp_a, ca_pem):
    tsr, nonce = stamp_a
    changed = bytes([ROOT_A[0] ^ 1]) + ROOT_A[1:]
    c = verify_token(tsr, changed, ca_pem, nonce=nonce)
    assert not c.ok and "imprint" in tags(c)
    assert "imprint" in c.second_opinion  # openssl agrees: message imprint mismatch


def test_i3_token_of_another_batch(stamp_a, ca_pem):
    tsr, _ = stamp_a
    c = verify_token(tsr, ROOT_B, ca_pem)
    assert not c.ok and "imprint" in tags(c)


def test_i4_wrong_nonce(stamp_a, ca_pem):
    tsr, nonce = stamp_a
    c = verify_token(tsr, ROOT_A, ca_pem, nonce=nonce ^ 1)
    assert not c.ok and tags(c) == {"nonce"}


def test_i4_replayed_response_rejected_at_stamping(tsa_ok):
    request_stamp(tsa_ok.url, ROOT_B)
    tsa_ok.mode = "replay"  # answers the previous response again: its nonce is the old request's
    with pytest.raises(TsaError, match="nonce"):
        request_stamp(tsa_ok.url, ROOT_B)


@pytest.mark.parametrize("mode, match", [("http500", "HTTP 500"), ("reject", "rejection"), ("hang", "did not answer")])
def test_i10_tsa_failures_raise(tsa_ok, mode, match):
    tsa_ok.mode = mode
    with pytest.raises(TsaError, match=match):
        request_stamp(tsa_ok.url, ROOT_A, timeout=1)


def test_i10_tsa_unreachable():
    with pytest.raises(TsaError, match="cannot reach"):
        request_stamp("http://127.0.0.1:9/tsa", ROOT_A, timeout=2)


def test_i5_flipped_signature_byte(stamp_a, ca_pem):
    tsr, nonce = stamp_a
    # The TimeStampResp ends with the SignerInfo's signature (ECDSA r, s): flip a byte inside s.
    bad = tsr[:-5] + bytes([tsr[-5] ^ 0x01]) + tsr[-4:]
    c = verify_token(bad, ROOT_A, ca_pem, nonce=nonce)
    assert not c.ok
    assert "signature/chain" in tags(c) and "openssl" in tags(c)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A second TSA under a foreign CA that embeds its own self-signed root in the certificate bag."""
    pki = make_pki(tmp_path_factory.mktemp("foreign-pki"), "foreign")
    return pki, Tsa(pki, embed_ca=True)


def test_i6_foreign_ca_with_embedded_root(foreign, tsa, ca_pem):
    """Rejected in roots-only and pinned mode, both when rfc3161-client cannot parse the bag
    (openssl is then the only check) and when the bag is DER-sorted so rfc3161-client checks it too."""
    pki, ftsa = foreign
    as_sent = ftsa.reply(query_for(ROOT_A))
    sorted_bag = der_sort_certificates(as_sent, [pki.tsa_cert, pki.ca_cert])
    for tsr in (as_sent, sorted_bag):
        assert verify_token(tsr, ROOT_A, pki.ca_cert.read_bytes()).ok  # sanity: good under its own CA
        roots_only = verify_token(tsr, ROOT_A, ca_pem)
        pinned = verify_token(tsr, ROOT_A, ca_pem + tsa.tsa_cert_path.read_bytes())
        for c in (roots_only, pinned):
            assert not c.ok
            assert "openssl" in tags(c), c.problems
    # The DER-sorted one reaches rfc3161-client, which refuses the embedded self-signed root.
    assert "signature/chain" in tags(verify_token(sorted_bag, ROOT_A, ca_pem))


@pytest.fixture(scope="module")
def tst_info(stamp_a, tmp_path_factory) -> bytes:
    return tst_info_of(stamp_a[0], tmp_path_factory.mktemp("tstinfo"))


@pytest.mark.parametrize("eku", ["timeStamping", "critical,codeSigning"])
def test_i7_tsa_certificate_eku(tsa, tst_info, stamp_a, ca_pem, tmp_path, eku):
    """EKU not critical, or without timeStamping: a token re-signed with such a certificate (cms -sign) is rejected."""
    cert, key = tsa.pki.issue_tsa_cert(f"eku-{abs(hash(eku))}", eku=eku)
    tsr = forge_response(tst_info, cert, key, tmp_path)
    c = verify_token(tsr, ROOT_A, ca_pem, nonce=stamp_a[1])
    assert not c.ok
    assert "EKU" in tags(c), c.problems


def test_i9_no_signing_certificate_attribute(tsa, tst_info, stamp_a, ca_pem, tmp_path):
    """Re-signed by the real TSA key without ESS signing-certificate: only the openssl second opinion catches it."""
    tsr = forge_response(tst_info, tsa.pki.tsa_cert, tsa.pki.tsa_key, tmp_path)
    c = verify_token(tsr, ROOT_A, ca_pem, nonce=stamp_a[1])
    assert not c.ok
    assert tags(c) == {"openssl"}, c.problems  # rfc3161-client accepts it (it does not check ESSCertIDv2)
    assert verify_token(tsr, ROOT_A, ca_pem, nonce=stamp_a[1], openssl=False).ok  # the gap the second opinion fills


def test_i11_implausible_gen_time(stamp_a, ca_pem):
    tsr, nonce = stamp_a
    gen = verify_token(tsr, ROOT_A, ca_pem).gen_time
    assert verify_token(tsr, ROOT_A, ca_pem, not_before=gen + dt.timedelta(minutes=2), not_after=gen).ok  # within skew
    early = verify_token(tsr, ROOT_A, ca_pem, not_before=gen + dt.timedelta(hours=1))
    late = verify_token(tsr, ROOT_A, ca_pem, not_after=gen - dt.timedelta(days=30))
    for c in (early, late):
        assert not c.ok and tags(c) == {"genTime"}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: b"",
        lambda t: b"garbage, not DER at all",
        lambda t: t[: len(t) // 2],
        lambda t: t[:-1],
        lambda t: t + b"\x00\x00",
        lambda t: b"\x30\x82\xff\xff" + t[4:],
        lambda t: b"\x30\x03\x02\x01",
        lambda t: bytes(range(256)) * 8,
    ],
    ids=["empty", "garbage", "half", "minus-one", "trailing", "huge-length", "short-seq", "noise"],
)
def test_i14_malformed_der_never_raises(stamp_a, ca_pem, mangle):
    c = verify_token(mangle(stamp_a[0]), ROOT_A, ca_pem)
    assert not c.ok
    assert any(p.startswith("invalid token") for p in c.problems), c.problems


def test_unreadable_ca_is_a_problem(stamp_a):
    c = verify_token(stamp_a[0], ROOT_A, b"not a certificate")
    assert not c.ok and tags(c) == {"CA"}


# -- the real tokens of shared/corpora/f-rfc3161, one test per file group -------
@pytest.fixture(scope="module")
def f_dir() -> Path:
    from corpora import corpora_dir

    return corpora_dir() / "f-rfc3161"


def test_corpus_sigstage(f_dir):
    """Real sigstage.dev TSA tokens over b"hello" (README), chain in ts_chain.pem."""
    d = f_dir / "trailofbits-rfc3161-client" / "sigstage"
    chain = (d / "ts_chain.pem").read_bytes()
    for name in ("response-sha256.tsr", "response-no-embedded-cert.tsr"):
        c = verify_token((d / name).read_bytes(), b"hello", chain)
        assert c.ok, (name, c.problems)  # no embedded cert: the pinned TSA certificate of the chain is used
    for name in ("response-sha384.tsr", "response-sha512.tsr"):
        c = verify_token((d / name).read_bytes(), b"hello", chain)
        assert tags(c) == {"imprint"} and "SHA-256 required" in c.problems[0]  # our policy (I13); otherwise valid
        assert c.second_opinion == "openssl: OK"
    c = verify_token((d / "response-invalid-signature.tsr").read_bytes(), b"hello", chain)
    assert tags(c) == {"signature/chain", "openssl"}  # I5
    assert verify_token((d / "response-sha256.tsr").read_bytes(), b"hello!", chain).problems[0].startswith("imprint")


def test_corpus_sigstore_mock_expired_certificate(f_dir):
    """I12: the TSA certificate expired in 2024 but was valid at genTime (2023-02-01): accepted."""
    d = f_dir / "trailofbits-rfc3161-client" / "sigstore.mock"
    c = verify_token((d / "response-expired.tsr").read_bytes(), (d / "payload").read_bytes(), (d / "ts_chain.pem").read_bytes())
    assert c.ok, c.problems
    assert c.gen_time == dt.datetime(2023, 2, 1, tzinfo=dt.timezone.utc)


def test_corpus_test_tsa(f_dir):
    """SHA-512 tokens over b"hello": valid except for our SHA-256 rule; other_response is from another TSA."""
    d = f_dir / "trailofbits-rfc3161-client" / "test_tsa"
    chain = (d / "ts_chain.pem").read_bytes()
    for name in ("response.tsr", "response-injected-certs.tsr"):
        c = verify_token((d / name).read_bytes(), b"hello", chain)
        assert tags(c) == {"imprint"} and c.second_opinion == "openssl: OK", (name, c.problems)
    c = verify_token((d / "other_response.tsr").read_bytes(), b"hello", chain)
    assert {"signature/chain", "openssl"} <= tags(c)  # signed under a CA not in ts_chain.pem (I6)
    for name in ("request.der", "other_request.der"):  # requests, not responses
        assert tags(verify_token((d / name).read_bytes(), b"hello", chain)) == {"invalid token"}


def test_corpus_identrust_der_chain(f_dir):
    """A real IdenTrust token (SHA-512) whose root is given as one DER certificate."""
    d = f_dir / "trailofbits-rfc3161-client" / "identrust"
    c = verify_token((d / "issue-104.tsr").read_bytes(), b"hello", (d / "ts_chain.pem").read_bytes())
    assert tags(c) == {"imprint"} and c.second_opinion == "openssl: OK", c.problems
    assert c.gen_time.year == 2025


def test_corpus_clocklock_sha1(f_dir, ca_pem):
    """I13: SHA-1 tokens are rejected; no CA is provided, so the chain fails against ours; .tsq are requests."""
    d = f_dir / "clocklock-go-rfc3161"
    msg = (d / "message.txt").read_bytes()
    for name in ("sha1.response.tsr", "sha1_nonce.response.tsr"):
        c = verify_token((d / name).read_bytes(), msg, ca_pem)
        assert not c.ok and "SHA-1" in c.problems[0]
        assert "signature/chain" in tags(c)
        assert c.gen_time.year == 2016
    for q in sorted(d.glob("*.tsq")):
        assert tags(verify_token(q.read_bytes(), msg, ca_pem)) == {"invalid token"}


def test_corpus_sigstore_python_bundles(f_dir):
    """Tokens from sigstore bundles (stamping signatures we do not have): all parse; chain OK except the late one."""
    d = f_dir / "sigstore-python-tsa" / "derived_from_bundles"
    chain = (d / "ca_chain.pem").read_bytes()
    files = sorted(d.glob("*.tsr"))
    assert len(files) == 39
    for f in files:
        c = verify_token(f.read_bytes(), b"unknown data", chain)
        assert not c.ok and c.gen_time is not None and c.serial
        assert "imprint" in tags(c)
        if "late_timestamp" in f.name:
            assert "signature/chain" in tags(c)  # signed by a TSA outside this trust root
        else:
            assert "signature/chain" not in tags(c), (f.name, c.problems)
    d2 = f_dir / "sigstore-python-tsa"
    c = verify_token((d2 / "issue1482-timestamp-with-no-cert").read_bytes(), (d2 / "issue1482-message").read_bytes(), chain)
    assert not c.ok and "signature/chain" in tags(c)  # no certificate embedded and none pinned


def test_corpus_foreign_cas_reject_our_token(f_dir, stamp_a):
    """Our live token checked against CAs we do not hold (rfc3161ng's bundled certificates): rejected."""
    for crt in sorted((f_dir / "trbs-rfc3161ng").iterdir()):
        c = verify_token(stamp_a[0], ROOT_A, crt.read_bytes())
        assert not c.ok and ("signature/chain" in tags(c) or "CA" in tags(c)), (crt.name, c.problems)
