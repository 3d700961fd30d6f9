"""RFC 3161 token cases that need tokens built for them (RELIABILITY I8, I9, I12, I13).

Tokens come from ``openssl ts -reply`` (the test TSA's :class:`Tsa`) with signing certificates
and certificate bags chosen by the test; certificates are issued under the session TSA's CA with
``cryptography`` where openssl's command line cannot set a field (a notBefore in the future, a
serial shared by two certificates).

* I8: certificates injected into the bag, named like the real CA and TSA but of another key, do
  not stop a real token from verifying against the pinned CA, and a token signed under them is
  never trusted;
* I9: the ESSCertIDv2 hash names another certificate than the one in the bag (same key, same
  issuer and serial): refused by the ESS check;
* I12: a TSA certificate not yet valid at genTime: refused;
* I13: a token under another policy OID than the pinned one: refused with a policy problem.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.tsa import POLICY_OID, Pki, Tsa, cert_der, der_sort_certificates, make_pki, query_for
from verify.tokens import verify_token

ROOT = hashlib.sha256(b"a batch root for the token cases").digest()
OTHER_POLICY = "1.3.6.1.4.1.55555.9.9"


def tags(check) -> set[str]:
    return {p.split(":", 1)[0] for p in check.problems}


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(pki: Pki, key, cn: str, *, serial: int | None = None, not_before: dt.datetime | None = None) -> x509.Certificate:
    """A TSA certificate (critical timeStamping EKU) for ``key`` under the PKI's CA."""
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailarchive tests"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _tsa_with(d: Path, pki: Pki, cert, key, name: str, *, bag: list[Path] | None = None, policy: str | None = None) -> Tsa:
    """``openssl ts -reply`` signing with ``cert``/``key`` under ``pki``'s CA, optionally with extra bag certificates."""
    d.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = d / f"{name}.crt", d / f"{name}.key"
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    tsa = Tsa(Pki(d, pki.ca_cert, pki.ca_key, cert_path, key_path), name=name)
    text = tsa.cnf.read_text()
    if bag:
        (d / f"{name}-bag.pem").write_bytes(b"".join(p.read_bytes() for p in bag))
        text = text.replace("signer_digest", f"certs = {d / f'{name}-bag.pem'}\nsigner_digest")
    if policy:
        text = text.replace(POLICY_OID, policy)
    tsa.cnf.write_text(text)
    return tsa


@pytest.fixture(scope="module")
def look_alike(tmp_path_factory):
    """A foreign PKI whose root CA and TSA certificate carry the same names as the session TSA's."""
    return make_pki(tmp_path_factory.mktemp("look-alike"), "test")


def test_i8_injected_certificates_do_not_stop_a_real_token(tsa, look_alike, tmp_path):
    """The real TSA's token with the look-alike root and TSA certificate injected into its bag still verifies
    against the pinned CA (roots-only and pinned-TSA mode), as sent and with the bag DER-sorted."""
    ca_pem = Path(tsa.ca_cert_path).read_bytes()
    assert x509.load_pem_x509_certificate(look_alike.ca_cert.read_bytes()).subject == \
        x509.load_pem_x509_certificate(ca_pem).subject
    key = serialization.load_pem_private_key(tsa.pki.tsa_key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(tsa.pki.tsa_cert.read_bytes())
    real = _tsa_with(tmp_path / "i8", tsa.pki, cert, key, "i8", bag=[look_alike.ca_cert, look_alike.tsa_cert])
    as_sent = real.reply(query_for(ROOT))
    bag_ders = [cert_der(p) for p in (tsa.pki.tsa_cert, look_alike.ca_cert, look_alike.tsa_cert)]
    assert all(d in as_sent for d in bag_ders), "the injected certificates are not in the bag"
    sorted_bag = der_sort_certificates(as_sent, [tsa.pki.tsa_cert, look_alike.ca_cert, look_alike.tsa_cert])
    for tsr in (as_sent, sorted_bag):
        for pinned in (ca_pem, ca_pem + tsa.pki.tsa_cert.read_bytes()):
            c = verify_token(tsr, ROOT, pinned)
            assert c.ok, c.problems
            assert "CN=test-tsa" in c.tsa_subject


def test_i8_a_token_signed_under_injected_certificates_is_never_trusted(tsa, look_alike, tmp_path):
    """Signed by the look-alike TSA, its look-alike root and the real CA both injected: refused under the pinned CA."""
    ca_pem = Path(tsa.ca_cert_path).read_bytes()
    key = serialization.load_pem_private_key(look_alike.tsa_key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(look_alike.tsa_cert.read_bytes())
    fake = _tsa_with(tmp_path / "i8f", look_alike, cert, key, "i8f", bag=[look_alike.ca_cert, tsa.ca_cert_path])
    as_sent = fake.reply(query_for(ROOT))
    assert verify_token(as_sent, ROOT, look_alike.ca_cert.read_bytes()).ok  # sanity: good under its own root
    sorted_bag = der_sort_certificates(as_sent, [look_alike.tsa_cert, look_alike.ca_cert, tsa.ca_cert_path])
    for tsr in (as_sent, sorted_bag):
        for pinned in (ca_pem, ca_pem + tsa.pki.tsa_cert.read_bytes()):
            c = verify_token(tsr, ROOT, pinned)
            assert not c.ok and "openssl" in tags(c), c.problems
    assert "signature/chain" in tags(verify_token(sorted_bag, ROOT, ca_pem))


def test_i9_ess_cert_id_v2_of_another_certificate_is_refused(tsa, tmp_path):
    """Two certificates of one key, issuer and serial, different subjects: the token is signed naming B in its
    ESSCertIDv2, then B in the bag is swapped for A (outside the signature). The signature still verifies
    (rfc3161-client accepts it); the ESS binding does not."""
    ca_pem = Path(tsa.ca_cert_path).read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    for _ in range(50):  # ECDSA signatures vary in length: same length keeps every DER length of the response
        a = _issue(tsa.pki, key, "test-tsa-a", serial=serial)
        b = _issue(tsa.pki, key, "test-tsa-b", serial=serial, not_before=a.not_valid_before_utc)
        if len(a.public_bytes(serialization.Encoding.DER)) == len(b.public_bytes(serialization.Encoding.DER)):
            break
    else:
        pytest.fail("no two certificates of the same length")
    a_der, b_der = (c.public_bytes(serialization.Encoding.DER) for c in (a, b))
    signer = _tsa_with(tmp_path / "i9", tsa.pki, b, key, "i9")
    good = signer.reply(query_for(ROOT))
    assert verify_token(good, ROOT, ca_pem).ok, "sanity: the token as signed verifies"
    assert good.count(b_der) == 1
    swapped = good.replace(b_der, a_der)
    c = verify_token(swapped, ROOT, ca_pem)
    assert not c.ok
    assert tags(c) == {"openssl"}, c.problems
    assert "ess" in c.problems[0].lower() or "signing certificate" in c.problems[0].lower(), c.problems
    assert verify_token(swapped, ROOT, ca_pem, openssl=False).ok  # the gap the ESS check fills


def test_i12_tsa_certificate_not_yet_valid_at_gen_time(tsa, tmp_path):
    ca_pem = Path(tsa.ca_cert_path).read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    future = _issue(tsa.pki, key, "test-tsa-future", not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30))
    tsr = _tsa_with(tmp_path / "i12", tsa.pki, future, key, "i12").reply(query_for(ROOT))
    c = verify_token(tsr, ROOT, ca_pem)
    assert c.gen_time is not None and c.gen_time < future.not_valid_before_utc
    assert not c.ok
    assert {"signature/chain", "openssl"} <= tags(c), c.problems
    assert any("not yet valid" in p for p in c.problems), c.problems
    # the same key under a certificate valid at genTime verifies: it is the validity period that fails it
    valid = _issue(tsa.pki, key, "test-tsa-valid")
    assert verify_token(_tsa_with(tmp_path / "i12v", tsa.pki, valid, key, "i12v").reply(query_for(ROOT)), ROOT, ca_pem).ok


def test_i13_another_policy_oid_is_refused_when_a_policy_is_pinned(tsa, tmp_path):
    ca_pem = Path(tsa.ca_cert_path).read_bytes()
    key = serialization.load_pem_private_key(tsa.pki.tsa_key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(tsa.pki.tsa_cert.read_bytes())
    tsr = _tsa_with(tmp_path / "i13", tsa.pki, cert, key, "i13", policy=OTHER_POLICY).reply(query_for(ROOT))
    c = verify_token(tsr, ROOT, ca_pem, policy=POLICY_OID)
    assert c.policy == OTHER_POLICY
    assert not c.ok and tags(c) == {"policy"}, c.problems
    assert OTHER_POLICY in c.problems[0] and POLICY_OID in c.problems[0]
    assert verify_token(tsr, ROOT, ca_pem, policy=OTHER_POLICY).ok
    assert verify_token(tsr, ROOT, ca_pem).ok  # no policy pinned: any policy is accepted
