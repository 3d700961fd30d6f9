"""``timestamp ca add``: what a person adding a trust anchor is told about it."""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli import mailarchive
from tests.services.tsa import make_pki


def _self_signed_ca(path, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old root CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_after - dt.timedelta(days=3650)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_ca_add_names_an_expired_certificate_and_a_tsa_certificate_for_what_they_are(tmp_path):
    """An expired CA was added without a word (new stamps under it would then fail), and a TSA's own certificate
    was called a "CA". Both are still added (an auditor re-trusts an old CA to check old stamps), with a warning."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m"))
    old = tmp_path / "old-ca.pem"
    _self_signed_ca(old, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    r = mailarchive(home, "timestamp", "ca", "add", str(old), json_out=True).result
    assert r["kind"] == "ca" and [w for w in r["warnings"] if "expired on 2020-01-01" in w], r
    human = mailarchive(home, "timestamp", "ca", "add", str(old))
    assert "trusted CA CN=old root CA" in human.stderr and "warning: the certificate expired on 2020-01-01" in human.stderr

    pki = make_pki(tmp_path / "pki", "leafy")
    r = mailarchive(home, "timestamp", "ca", "add", str(pki.tsa_cert), json_out=True).result
    assert r["kind"] == "tsa" and [w for w in r["warnings"] if "no CA certificate" in w], r
    human = mailarchive(home, "timestamp", "ca", "add", str(pki.tsa_cert))
    assert "trusted TSA certificate (pinned itself" in human.stderr

    r = mailarchive(home, "timestamp", "ca", "add", str(pki.ca_cert), json_out=True).result
    assert r["kind"] == "ca" and "warnings" not in r          # a valid CA: nothing to say
