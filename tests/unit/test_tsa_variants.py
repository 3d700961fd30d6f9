"""What real TSAs answer beyond the test TSA's defaults (docs/timestamps.md, docs/reliability.md I17, I18):
HTTP quirks met by ``request_stamp`` (redirects, slow, empty, truncated, oversized or non-token bodies, other
content types) and the token variants ``openssl ts -reply`` makes under other TSA configurations."""
from __future__ import annotations

import hashlib
import re
import subprocess

import pytest

from services.tsa import Tsa, query_for
from toolkit.errors import NextStep
from verify.tokens import verify_token
from verify.tsa_client import TsaError, build_query, request_stamp

ROOT = hashlib.sha256(b"a batch root of the variants").digest()


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirect_is_named_and_not_followed(tsa_ok, code):
    """A redirect is reported with its Location and next step, and nothing goes to the new address: urllib
    followed 301/302 with an empty GET carrying the login to wherever the Location pointed."""
    tsa_ok.mode, tsa_ok.redirect_code = "redirect", code
    url = tsa_ok.url.replace("http://", "http://stamper@")
    from verify.tsa_client import TsaAccess

    with pytest.raises(TsaError, match=f"redirects to {re.escape(tsa_ok.url.rsplit('/', 1)[0])}/moved-tsa "
                                       f"\\(HTTP {code} ") as err:
        request_stamp(url, ROOT, timeout=5, access=TsaAccess(password="secret"))
    assert err.value.next_step is NextStep.TSA_MOVED
    assert [m for m, _, _ in tsa_ok.seen] == ["POST"]


def test_a_slow_tsa_is_bounded_by_the_timeout(tsa_ok):
    """A TSA sending its answer one byte at a time (each byte well inside the socket timeout) is given up
    after the timeout of the attempt; before, the wait had no bound (one pause per byte of the token: here
    about a minute)."""
    tsa_ok.mode, tsa_ok.drip_pause = "drip", 0.05
    finished = tsa_ok.drips_finished
    with pytest.raises(TsaError, match="did not answer within 1 s"):
        request_stamp(tsa_ok.url, ROOT, timeout=1)
    assert tsa_ok.drips_finished == finished  # given up while the answer was still coming


def test_a_slow_tsa_over_tls_is_bounded_too(tsa_https):
    """The same over HTTPS with a login: the TLS socket is cut at the timeout (TLS takes the plain socket's
    descriptor over, so cutting that one alone did nothing), and a redirect there is not followed either."""
    from fixtures_tsa import TSA_PASSWORD
    from verify.tsa_client import TsaAccess

    access = TsaAccess(tls_ca_pem=tsa_https.tls_ca_path.read_bytes(), password=TSA_PASSWORD)
    before = len(tsa_https.seen)
    try:
        tsa_https.mode, tsa_https.drip_pause = "drip", 0.05
        finished = tsa_https.drips_finished
        with pytest.raises(TsaError, match="did not answer within 1 s"):
            request_stamp(tsa_https.user_url, ROOT, timeout=1, access=access)
        assert tsa_https.drips_finished == finished  # given up while the answer was still coming
        tsa_https.mode, tsa_https.redirect_code = "redirect", 302
        with pytest.raises(TsaError, match=f"redirects to {re.escape(tsa_https.url.rsplit('/', 1)[0])}/moved-tsa"):
            request_stamp(tsa_https.user_url, ROOT, timeout=5, access=access)
    finally:
        tsa_https.mode, tsa_https.redirect_code, tsa_https.drip_pause = "ok", 307, 0.2
    assert [m for m, _, _ in tsa_https.seen[before:]] == ["POST", "POST"]


@pytest.mark.parametrize("mode, match", [
    ("html", r"answered \d+ bytes of text/html beginning '<html><body><h1>Please log in</h1>"),
    ("empty", "answered HTTP 200 with an empty body, not a time-stamp response"),
    ("truncated", r"sent \d+ of the \d+ bytes it announced \(the connection closed early\)"),
    ("huge", "answered more than 1048576 bytes"),
])
def test_an_answer_that_is_not_a_token_is_named(tsa_ok, mode, match):
    tsa_ok.mode = mode
    with pytest.raises(TsaError, match=match) as err:
        request_stamp(tsa_ok.url, ROOT, timeout=5)
    assert tsa_ok.url in str(err.value)


def test_a_token_under_another_content_type_is_accepted(tsa_ok):
    """The Content-Type is not what decides: a token sent as application/octet-stream is verified in full."""
    tsa_ok.mode = "octet"
    tsr, nonce = request_stamp(tsa_ok.url, ROOT, timeout=5)
    chk = verify_token(tsr, ROOT, tsa_ok.ca_cert_path.read_bytes(), nonce=nonce)
    assert chk.ok, chk.problems


def test_a_tsa_that_drops_the_nonce_is_refused_as_such(tsa_ok):
    tsa_ok.strip = {"nonce"}
    with pytest.raises(TsaError, match="answered without the request's nonce, which RFC 3161 requires it to echo"):
        request_stamp(tsa_ok.url, ROOT, timeout=5)


def test_a_token_without_its_tsa_certificate(tsa_ok):
    """A TSA that leaves its certificate out (certReq ignored): refused under the bare CA with the reason,
    accepted when the CA file holds the TSA certificate too."""
    tsa_ok.strip = {"cert_req"}
    tsr, nonce = request_stamp(tsa_ok.url, ROOT, timeout=5)
    ca = tsa_ok.ca_cert_path.read_bytes()
    bare = verify_token(tsr, ROOT, ca, nonce=nonce)
    assert not bare.ok and any("carries no TSA certificate" in p for p in bare.problems), bare.problems
    both = verify_token(tsr, ROOT, ca + tsa_ok.tsa_cert_path.read_bytes(), nonce=nonce)
    assert both.ok, both.problems


def test_gen_time_keeps_its_fractional_seconds(tsa, tmp_path):
    """A TSA with clock_precision_digits writes genTime with fractions; they were dropped (rfc3161-client)."""
    tsr = Tsa(tsa.pki, name="precise", config={"clock_precision_digits": "6"}).reply(query_for(ROOT))
    (tmp_path / "r.tsr").write_bytes(tsr)
    text = subprocess.run(["openssl", "ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text"], capture_output=True,
                          text=True, check=True).stdout
    frac = re.search(r"^Time stamp: .*:\d\d\.(\d+) ", text, re.M).group(1)
    chk = verify_token(tsr, ROOT, tsa.ca_cert_path.read_bytes())
    assert chk.ok, chk.problems
    assert chk.gen_time.microsecond == int(frac.ljust(6, "0")[:6])


VARIANTS = {
    "signer SHA-384": {"signer_digest": "sha384"},
    "signer SHA-512": {"signer_digest": "sha512"},
    "ESSCertIDv2 SHA-512": {"ess_cert_id_alg": "sha512"},
    "ESSCertID chain": {"ess_cert_id_chain": "yes", "certs": "{ca}"},
    "no accuracy": {"accuracy": None},
    "accuracy in ms and µs": {"accuracy": "secs:0, millisecs:500, microsecs:100"},
    "ordering": {"ordering": "yes"},
    "no TSA name": {"tsa_name": "no"},
    "genTime in ms": {"clock_precision_digits": "3"},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_token_variants_of_openssl_tsa_configurations_verify(tsa, name):
    config = {k: (v.format(ca=tsa.pki.ca_cert) if isinstance(v, str) else v) for k, v in VARIANTS[name].items()}
    query, nonce = build_query(ROOT)
    tsr = Tsa(tsa.pki, name=f"v{list(VARIANTS).index(name)}", config=config).reply(query)
    chk = verify_token(tsr, ROOT, tsa.ca_cert_path.read_bytes(), nonce=nonce)
    assert chk.ok, chk.problems
    assert chk.second_opinion == "openssl: OK"


def test_the_pinned_policy_is_asked_for(tsa, tmp_path):
    """The request carries the pinned policy, so a TSA serving several answers under it, not its default."""
    other = "1.3.6.1.4.1.55555.1.2"
    query, nonce = build_query(ROOT, other)
    (tmp_path / "q.tsq").write_bytes(query)
    text = subprocess.run(["openssl", "ts", "-query", "-in", str(tmp_path / "q.tsq"), "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert f"Policy OID: {other}" in text and "Certificate required: yes" in text
    tsr = Tsa(tsa.pki, name="policies", config={"other_policies": other}).reply(query)
    chk = verify_token(tsr, ROOT, tsa.ca_cert_path.read_bytes(), nonce=nonce, policy=other)
    assert chk.ok and chk.policy == other, chk.problems


def test_an_rsa_pss_signed_token_is_refused_with_the_reason(tmp_path):
    """A well-formed token signed with RSASSA-PSS (openssl cms verifies it): OpenSSL's time-stamp code, which both
    verifiers and the auditor's openssl step use, cannot check PSS ("invalid padding", as if forged); the
    refusal says that the scheme is the reason, and that the TSA cannot be used."""
    from services.tsa import make_pki, pss_resign, token_of

    pki = make_pki(tmp_path / "pss", "pss", rsa_tsa=True)
    query, nonce = build_query(ROOT)
    tsr = pss_resign(Tsa(pki).reply(query), pki.tsa_key)
    (tmp_path / "t.der").write_bytes(token_of(tsr, tmp_path))
    cms = subprocess.run(["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "t.der"),
                          "-out", str(tmp_path / "tst.der")], capture_output=True, text=True)
    assert cms.returncode == 0, cms.stderr
    chk = verify_token(tsr, ROOT, pki.ca_cert.read_bytes(), nonce=nonce)
    assert not chk.ok
    assert any("signed with RSASSA-PSS" in p and "cannot be used" in p for p in chk.problems), chk.problems


def test_a_token_signed_over_a_sha1_digest_is_refused(tsa):
    """A TSA configured with ``signer_digest = sha1`` (OpenSSL signs so without complaint) gave tokens that were
    accepted: only a SHA-1 imprint was refused. SHA-1 is not collision-resistant, and a token must hold for the
    archive's life; the signer digest is now held to the imprint's rule, named as the reason (I13)."""
    query, nonce = build_query(ROOT)
    tsr = Tsa(tsa.pki, name="sha1signer", config={"signer_digest": "sha1"}).reply(query)
    chk = verify_token(tsr, ROOT, tsa.ca_cert_path.read_bytes(), nonce=nonce)
    assert not chk.ok
    assert [p for p in chk.problems if "signed over a SHA-1 digest" in p] and len(chk.problems) == 1, chk.problems
    assert chk.second_opinion == "openssl: OK"      # the token itself is well-formed: the digest is the reason
