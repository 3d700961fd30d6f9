"""Revocation data for tokens checked years later (RELIABILITY I16).

A token proves that its root existed at genTime as long as the TSA's certificate was good at
genTime. CRLs given by the user (``verify --crl``, ``verify-evidence --crl``) are applied to the
TSA certificate and to the intermediate CAs of its chain:

* a CRL whose issuer is the certificate's issuer must verify under that CA (a pinned CA or one of
  the token's certificates with that subject); a CRL that does not is a problem (fail closed);
* an entry counts only when its revocation date is at or before the verification time ``at``
  (what was known then);
* revoked at or before genTime: the token is refused;
* revoked after genTime: the token was made while the certificate was good and still verifies —
  unless the reason is keyCompromise, which puts every signature of that key in doubt.

CRLs of other issuers do not apply and are ignored.
"""
from __future__ import annotations

import datetime as dt


def load_crl(data: bytes):
    """A CRL from PEM or DER bytes; ValueError when it is neither."""
    from cryptography import x509

    data = bytes(data)
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _is_ca(cert) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _reason(entry) -> str | None:
    from cryptography import x509

    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        return None


def _signed_by(crl, issuer) -> bool:
    try:
        return bool(crl.is_signature_valid(issuer.public_key()))
    except (TypeError, ValueError):
        return False


def problems(signer, certs: list, crls: list[bytes], gen_time: dt.datetime | None, at: dt.datetime) -> list[str]:
    """Problem strings (tag ``revocation:``) for the signing certificate ``signer`` and the intermediate CAs
    among ``certs`` (the pinned certificates and the token's bag) under the CRLs ``crls``."""
    if signer is None:
        return ["revocation: the TSA certificate is not in the token, so the CRLs cannot be applied to it"]
    if gen_time is None:
        return ["revocation: no genTime to compare revocation dates with"]
    out: list[str] = []
    try:
        loaded = [load_crl(c) for c in crls]
    except ValueError as exc:
        return [f"revocation: a CRL is unreadable ({exc})"]
    chain = [signer] + [c for c in certs if _is_ca(c) and c.issuer != c.subject]
    seen = set()
    for cert in chain:
        key = (cert.issuer.rfc4514_string(), cert.serial_number)
        if key in seen:
            continue
        seen.add(key)
        who = f"certificate {cert.subject.rfc4514_string()} (serial {cert.serial_number:x})"
        issuers = [c for c in certs if c.subject == cert.issuer and _is_ca(c)]
        for crl in loaded:
            if crl.issuer != cert.issuer:
                continue
            if not any(_signed_by(crl, i) for i in issuers):
                out.append(f"revocation: a CRL of {cert.issuer.rfc4514_string()} does not verify under that CA "
                           "(damaged, forged, or of another CA with that name)")
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is None:
                continue
            when = entry.revocation_date_utc
            if when > at:
                continue  # not revoked yet at the verification time
            reason = _reason(entry)
            if when <= gen_time:
                out.append(f"revocation: {who} was revoked on {when.isoformat()} ({reason or 'no reason given'}), "
                           f"at or before the token's genTime {gen_time.isoformat()}")
            elif reason == "key_compromise":
                out.append(f"revocation: {who} was revoked on {when.isoformat()} for key compromise: a token signed "
                           f"with that key proves nothing, although its genTime {gen_time.isoformat()} is earlier")
    return out
