"""Verifying an RFC 3161 TimeStampResp over a Merkle root (docs/timestamps.md, docs/reliability.md I1–I16).

``verify_token`` never raises: any failure is a problem string in the
returned :class:`TokenCheck`, and ``ok`` is True only with no problems.
Problem strings start with a fixed tag so callers can sort them:

``invalid token:``   the DER does not parse (I14)
``CA:``              the pinned CA certificate does not load
``status:``          PKIStatus is neither granted nor grantedWithMods (I10)
``imprint:``         not SHA-256 (I13), or not SHA-256 of the root (I2, I3)
``nonce:``           differs from the request's (I4)
``signature/chain:`` rfc3161-client: signature, chain to the pinned CA at genTime (I5, I6, I8, I12); an RSASSA-PSS
                     signature, which OpenSSL's time-stamp code cannot check, is named as the reason (I18); a
                     signature over a SHA-1 digest is refused (I13)
``EKU:``             TSA certificate EKU missing, not critical, no timeStamping (I7)
``openssl:``         ``openssl ts -verify`` refused it: ESS signing-certificate (v2) binding (I9) and more
``policy:``          not the pinned TSA policy OID (when one is pinned)
``genTime:``         outside [not_before - CLOCK_SKEW, not_after + MAX_DELAY] (I11), or after the verification time
``revocation:``      the TSA certificate or its CA revoked by a given CRL (I16, :mod:`verify.revocation`)

rfc3161-client checks signature, chain at genTime, EKU; it does not check
the ESSCertIDv2 binding, so ``openssl ts -verify -CAfile <pinned CA>`` runs
as a second opinion, and as the only signature check when rfc3161-client
cannot parse a response (e.g. ``InvalidSetOrdering`` from certificate bags
in non-DER order). Fields then come from ``openssl ts -reply -text``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA1_OID = "1.3.14.3.2.26"
RSASSA_PSS_OID = "1.2.840.113549.1.1.10"
#: sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1
SHA1_SIGNATURE_OIDS = {"1.2.840.113549.1.1.5", "1.2.840.10045.4.1", "1.2.840.10040.4.3"}
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_DELAY = dt.timedelta(days=7)
OPENSSL_TIMEOUT = 30


@dataclass
class TokenCheck:
    ok: bool
    problems: list[str] = field(default_factory=list)
    gen_time: dt.datetime | None = None
    serial: str | None = None  # lowercase hex, no 0x
    policy: str | None = None  # dotted OID
    tsa_subject: str | None = None  # RFC 4514 subject of the signing certificate (or the TSA name)
    nonce: int | None = None
    second_opinion: str | None = None  # "openssl: OK" / "openssl: <error>" / None when not run


def _fatal(exc: BaseException) -> bool:
    return isinstance(exc, (KeyboardInterrupt, SystemExit))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def ca_fingerprint(ca_pem: bytes) -> str:
    """SHA-256 (hex) of the DER of the first certificate in ``ca_pem``: the pinned CA's name in the catalog."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = load_ca(ca_pem)[0][0]
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


# -- fields ------------------------------------------------------------------------------------
@dataclass
class TokenFields:
    status: int | None = None
    status_text: str | None = None
    hash_oid: str | None = None
    imprint: bytes | None = None
    gen_time: dt.datetime | None = None
    serial: str | None = None
    policy: str | None = None
    nonce: int | None = None
    tsa_subject: str | None = None
    parsed_by: str = "rfc3161-client"
    response: object = None  # the rfc3161_client TimeStampResponse when it parsed
    signer_cert: object = None  # the signing certificate from the token's bag (x509), when rfc3161-client parsed
    bag: list = field(default_factory=list)  # every certificate of the token's bag (x509)


def parse_fields(tsr: bytes) -> TokenFields:
    """The fields of a TimeStampResp; rfc3161-client first, ``openssl ts -reply -text`` as fallback.

    Raises ValueError (with both parsers' reasons) when neither can read it.
    """
    try:
        return _fields_rfc3161(tsr)
    except BaseException as exc:  # the Rust binding raises ValueError or PanicException
        if _fatal(exc):
            raise
        first = _describe(exc)
    try:
        return _fields_openssl(tsr)
    except BaseException as exc:
        if _fatal(exc):
            raise
        raise ValueError(f"{first}; openssl: {_describe(exc)}") from None


def _fields_rfc3161(tsr: bytes) -> TokenFields:
    from cryptography import x509
    from rfc3161_client import decode_timestamp_response

    resp = decode_timestamp_response(tsr)
    f = TokenFields(status=int(resp.status), response=resp)
    try:
        f.status_text = "; ".join(resp.status_string) or None
    except BaseException as exc:
        if _fatal(exc):
            raise
    if f.status not in (0, 1):  # no token in a refused response
        return f
    info = resp.tst_info
    mi = info.message_imprint
    f.hash_oid = mi.hash_algorithm.dotted_string
    f.imprint = bytes(mi.message)
    g = info.gen_time
    f.gen_time = _precise_gen_time(info) or (g if g.tzinfo else g.replace(tzinfo=dt.timezone.utc))
    f.serial = format(info.serial_number, "x")
    f.policy = info.policy.dotted_string
    f.nonce = info.nonce
    sd = resp.signed_data
    sis = list(sd.signer_infos)
    if len(sis) == 1:
        for der in sd.certificates:
            cert = x509.load_der_x509_certificate(der)
            f.bag.append(cert)
            if cert.issuer == sis[0].issuer and cert.serial_number == sis[0].serial_number:
                f.tsa_subject = cert.subject.rfc4514_string()
                f.signer_cert = cert
    if f.tsa_subject is None:
        try:
            name = info.name
            if name is not None:
                f.tsa_subject = name.value.rfc4514_string() if hasattr(name.value, "rfc4514_string") else str(name.value)
        except BaseException as exc:
            if _fatal(exc):
                raise
    return f


def _precise_gen_time(info) -> dt.datetime | None:
    """genTime with its fractional seconds (RFC 3161 §2.4.2 allows them; rfc3161-client drops them), read
    from the TSTInfo's GeneralizedTime; None when it cannot be read that way."""
    try:
        der = bytes(info.as_bytes())
        at, end = _der_content(der, 0)
        while at < end:
            tag, start, stop = _der_at(der, at)
            if tag == 0x18:  # the first GeneralizedTime of a TSTInfo is its genTime
                m = re.fullmatch(rb"(\d{14})(?:\.(\d{1,6})\d*)?Z", der[start:stop])
                if not m:
                    return None
                t = dt.datetime.strptime(m.group(1).decode(), "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)
                return t.replace(microsecond=int((m.group(2) or b"0").decode().ljust(6, "0")))
            at = stop
    except (ValueError, IndexError, AttributeError, TypeError):
        pass
    return None


def _der_at(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at ``at``."""
    tag, first = der[at], der[at + 1]
    if first < 0x80:
        return tag, at + 2, at + 2 + first
    n = first & 0x7F
    start = at + 2 + n
    return tag, start, start + int.from_bytes(der[at + 2: start], "big")


def _der_content(der: bytes, at: int) -> tuple[int, int]:
    _, start, end = _der_at(der, at)
    return start, end


def _children(der: bytes, at: int) -> list[int]:
    """The offsets of the items inside the constructed DER item at ``at``."""
    out, (pos, end) = [], _der_content(der, at)
    while pos < end:
        out.append(pos)
        pos = _der_at(der, pos)[2]
    return out


def _signature_algorithm(tsr: bytes) -> str | None:
    """The dotted OID of the token's SignerInfo signatureAlgorithm (None when not laid out as RFC 3161 says)."""
    return _signer_algorithms(tsr)[1]


def _signer_algorithms(tsr: bytes) -> tuple[str | None, str | None]:
    """(digestAlgorithm, signatureAlgorithm) of the token's first SignerInfo as dotted OIDs (None: not laid out so)."""
    try:
        token = _children(tsr, 0)[1]                       # TimeStampResp { status, timeStampToken }
        signed_data = _children(tsr, _children(tsr, token)[1])[0]  # ContentInfo { type, [0] { SignedData } }
        signer_info = _children(tsr, _children(tsr, signed_data)[-1])[0]  # signerInfos SET, the first
        items = _children(tsr, signer_info)    # version, sid, digestAlgorithm, [0] attrs, signatureAlgorithm, signature
        at = next(i for i, pos in enumerate(items) if tsr[pos] == 0x04)  # the signature; its algorithm is before it
        return _oid_of(tsr, _children(tsr, items[2])[0]), _oid_of(tsr, _children(tsr, items[at - 1])[0])
    except (IndexError, StopIteration, ValueError):
        return None, None


def _oid_of(der: bytes, at: int) -> str | None:
    tag, start, end = _der_at(der, at)
    if tag != 0x06 or start == end:
        return None
    arcs, value = [], 0
    for byte in der[start:end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_HASH_NAMES = {"sha256": SHA256_OID, "sha1": SHA1_OID, "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3"}


def _openssl_time(text: str) -> dt.datetime:
    # "Nov 27 21:20:02 2026 GMT" or "Nov 27 21:20:02.123 2026 GMT"
    m = re.match(r"(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)(?:\.(\d+))?\s+(\d{4})", text.strip())
    if not m:
        raise ValueError(f"unreadable time {text!r}")
    mon, day, hh, mm, ss, frac, year = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    return dt.datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), micro, tzinfo=dt.timezone.utc)


def _fields_openssl(tsr: bytes) -> TokenFields:
    with tempfile.TemporaryDirectory(prefix="mailarchive-tsr-") as d:
        path = Path(d) / "r.tsr"
        path.write_bytes(tsr)
        p = subprocess.run(["openssl", "ts", "-reply", "-in", str(path), "-text"], capture_output=True, timeout=OPENSSL_TIMEOUT)
    text = p.stdout.decode("utf-8", errors="replace")
    if p.returncode != 0 or "Status info:" not in text:
        raise ValueError(_openssl_error(p.stderr) or "openssl cannot read the response")
    f = TokenFields(parsed_by="openssl")
    status = re.search(r"^Status: (.+?)\.?$", text, re.M)
    f.status = {"Granted": 0, "Granted with modifications": 1, "Rejected": 2, "Waiting": 3}.get(
        status.group(1) if status else "", 2
    )
    desc = re.search(r"^Status description: (.+)$", text, re.M)
    f.status_text = desc.group(1) if desc and desc.group(1) != "unspecified" else None
    if "TST info:" not in text:
        return f
    if m := re.search(r"^Hash Algorithm: (\S+)", text, re.M):
        f.hash_oid = _HASH_NAMES.get(m.group(1).lower(), m.group(1))
    if m := re.search(r"^Message data:\n((?:\s+[0-9a-f]{4} - .*\n)+)", text, re.M):
        hexbytes = ""
        for line in m.group(1).splitlines():
            hexpart = line.split(" - ", 1)[1][:48]
            hexbytes += re.sub(r"[^0-9a-fA-F]", "", hexpart.replace("-", " "))
        f.imprint = bytes.fromhex(hexbytes)
    if m := re.search(r"^Policy OID: (\S+)", text, re.M):
        f.policy = m.group(1)
    if m := re.search(r"^Serial number: (?:0x)?([0-9A-Fa-f]+)", text, re.M):
        f.serial = m.group(1).lower().lstrip("0") or "0"
    if m := re.search(r"^Time stamp: (.+)$", text, re.M):
        f.gen_time = _openssl_time(m.group(1))
    if m := re.search(r"^Nonce: (?:0x)?([0-9A-Fa-f]+)", text, re.M):
        f.nonce = int(m.group(1), 16)
    if m := re.search(r"^TSA: DirName:(.+)$", text, re.M):
        f.tsa_subject = m.group(1).strip()
    return f


def _openssl_error(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", errors="replace").splitlines() if ln.strip() and not ln.startswith("Using configuration")]
    reasons = []
    for ln in lines:
        # "40F7...:error:17800064:time stamp routines:ts_check_signing_certs:ess signing certificate error:../crypto/ts/..."
        parts = ln.split(":")
        if len(parts) >= 6 and parts[1] == "error":
            reason = parts[5].strip()
            m = re.search(r":[^:\s]+\.c:\d+:(.*)$", ln)
            if m and m.group(1).strip():
                reason += f" ({m.group(1).strip()})"
            reasons.append(reason)
        elif not ln.startswith(("Verification:", "Warning:")):
            reasons.append(ln.strip())
    seen: list[str] = []
    for r in reasons:
        if r not in seen:
            seen.append(r)
    return "; ".join(seen)


# -- checks -----------------------------------------------------------------------------------
def _openssl_verify(tsr: bytes, root: bytes, ca_pem: bytes, at: dt.datetime | None) -> str | None:
    """None when ``openssl ts -verify`` accepts the response, else its reason."""
    with tempfile.TemporaryDirectory(prefix="mailarchive-tsv-") as d:
        dp = Path(d)
        (dp / "r.tsr").write_bytes(tsr)
        (dp / "root.bin").write_bytes(root)
        (dp / "ca.pem").write_bytes(ca_pem)
        cmd = ["openssl", "ts", "-verify", "-in", str(dp / "r.tsr"), "-data", str(dp / "root.bin"),
               "-CAfile", str(dp / "ca.pem"), "-untrusted", str(dp / "ca.pem")]
        if at is not None:  # the chain must be valid at genTime, not now (I12)
            cmd += ["-attime", str(int(at.timestamp()))]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=OPENSSL_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot run openssl ({_describe(exc)})"
    if p.returncode == 0 and b"Verification: OK" in p.stdout:
        return None
    return _openssl_error(p.stderr) or "verification failed"


def load_ca(ca_pem: bytes) -> tuple[list, bytes]:
    """The pinned certificate(s) and their PEM text; ``ca_pem`` may also be one DER certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = bytes(ca_pem)
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
    else:
        certs = [x509.load_der_x509_certificate(data)]
    return certs, b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _shorten(msg: str) -> str:
    """OpenSSL ErrorStack reprs from the Rust binding, cut down to their reasons."""
    if "ErrorStack" not in msg:
        return msg
    head = msg.split(": Unable to verify", 1)[0].split("ErrorStack", 1)[0].rstrip(": ")
    reasons = []
    for m in re.finditer(r'reason: "([^"]+)"(?:, file: "[^"]*", line: \d+(?:, data: "([^"]*)")?)?', msg):
        r = m.group(1) + (f" ({m.group(2)})" if m.group(2) else "")
        if r not in reasons:
            reasons.append(r)
    return f"{head}: {'; '.join(reasons)}" if reasons else msg


def _is_ca(cert) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _client_verify(resp, certs: list, problems: list[str]) -> None:
    """rfc3161-client: signature, chain to the pinned CA at genTime, EKU (imprint and nonce are checked apart)."""
    from rfc3161_client import VerifierBuilder

    roots = [c for c in certs if c.issuer == c.subject] or certs
    leaves = [c for c in certs if c not in roots and not _is_ca(c)]
    builder = VerifierBuilder(
        roots=list(roots),
        intermediates=[c for c in certs if c not in roots and c not in leaves],
        # A pinned TSA certificate (a non-CA certificate in the pinned file) must be the signer.
        tsa_certificate=leaves[0] if len(leaves) == 1 else None,
    )
    try:
        builder.build().verify(resp, resp.tst_info.message_imprint.message)
    except BaseException as exc:
        if _fatal(exc):
            raise
        msg = _shorten(str(exc) or type(exc).__name__)
        # OpenSSL's timestamp-signing purpose check (critical EKU, timeStamping only) fails as
        # "unsuitable certificate purpose" before rfc3161-client's own EKU check runs.
        tag = "EKU" if ("EKU" in msg or "unsuitable certificate purpose" in msg) else "signature/chain"
        problems.append(f"{tag}: {msg}")


def verify_token(
    tsr: bytes,
    root: bytes,
    ca_pem: bytes,
    *,
    nonce: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    openssl: bool = True,
    policy: str | None = None,
    at: dt.datetime | None = None,
    crls: list[bytes] | None = None,
) -> TokenCheck:
    """Check a whole TimeStampResp (DER) as proof that ``root`` existed at genTime, under the pinned ``ca_pem``.

    ``not_before``/``not_after`` bound a plausible genTime (e.g. the batch's
    creation and the time the token was requested); CLOCK_SKEW and MAX_DELAY
    widen them. ``openssl=False`` skips the second opinion (then the ESS
    signing-certificate binding is not checked). ``policy`` pins the TSA
    policy OID the token must carry. ``at`` is the verification time
    (default now): genTime must not be after it, and the revocation entries
    of ``crls`` (PEM or DER CRLs) count only up to it (I16). Never raises.
    """
    check = TokenCheck(ok=False)
    problems = check.problems
    try:
        fields = _verify(tsr, root, ca_pem, nonce, not_before, not_after, openssl, check)
        if fields is not None:
            _check_at(fields, ca_pem, _aware(at) if at is not None else None, crls or [], problems)
        if policy and check.policy is not None and check.policy != policy:
            problems.append(f"policy: the token's TSA policy is {check.policy}, the pinned policy is {policy}")
    except BaseException as exc:
        if _fatal(exc):
            raise
        problems.append(f"invalid token: {_describe(exc)}")
    check.ok = not problems
    return check


def _check_at(f: TokenFields, ca_pem: bytes, at: dt.datetime | None, crls: list[bytes], problems: list[str]) -> None:
    """genTime against the verification time; the CRLs applied to the TSA certificate's chain (I16)."""
    if at is not None and f.gen_time is not None and f.gen_time > at + CLOCK_SKEW:
        problems.append(f"genTime: {f.gen_time.isoformat()} is after the verification time {at.isoformat()}")
    if crls:
        from . import revocation

        pinned = load_ca(ca_pem)[0]
        problems += revocation.problems(f.signer_cert, pinned + f.bag, crls, f.gen_time,
                                        at or dt.datetime.now(dt.timezone.utc))


def _verify(tsr, root, ca_pem, nonce, not_before, not_after, openssl, check: TokenCheck) -> TokenFields | None:
    """The checks of :func:`verify_token`; returns the parsed fields of a granted token (else None)."""
    problems = check.problems
    if not isinstance(tsr, (bytes, bytearray)) or not tsr:
        problems.append("invalid token: empty")
        return None
    tsr = bytes(tsr)
    framing = _der_framing_problem(tsr)
    if framing:
        problems.append(f"invalid token: {framing}")
        return None
    try:
        certs, ca_pem = load_ca(ca_pem)
    except BaseException as exc:
        if _fatal(exc):
            raise
        problems.append(f"CA: cannot read the pinned CA certificate ({_describe(exc)})")
        return None
    try:
        f = parse_fields(tsr)
    except ValueError as exc:
        problems.append(f"invalid token: {exc}")
        return None
    check.gen_time, check.serial, check.policy, check.nonce, check.tsa_subject = (
        f.gen_time, f.serial, f.policy, f.nonce, f.tsa_subject
    )
    if f.status not in (0, 1):  # grantedWithMods carries a token like granted; the checks below decide
        label = {2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}
        problems.append(f"status: {label.get(f.status, f.status)} (not granted)" + (f": {f.status_text}" if f.status_text else ""))
        return None
    if f.hash_oid == SHA1_OID:
        problems.append("imprint: SHA-1 message imprint rejected (SHA-256 required)")
    elif f.hash_oid != SHA256_OID:
        name = {oid: n.upper().replace("SHA", "SHA-") for n, oid in _HASH_NAMES.items()}.get(f.hash_oid, f.hash_oid)
        problems.append(f"imprint: hash algorithm {name}, SHA-256 required (the request asked for SHA-256)")
    elif f.imprint != hashlib.sha256(root).digest():
        problems.append("imprint: the token does not stamp SHA-256 of this root (modified batch, or a token of another batch)")
    if nonce is not None and f.nonce is None:
        problems.append(f"nonce: the token has none, the request had {nonce}")
    elif nonce is not None and f.nonce != nonce:
        problems.append(f"nonce: token has {f.nonce!r}, the request had {nonce}")
    if f.response is not None:
        resp = f.response
        if f.status == 1:  # rfc3161-client verifies only "granted": show it the same token with that status
            resp = _as_granted(tsr) or resp
        _client_verify(resp, certs, problems)
    elif not openssl:
        problems.append("signature/chain: rfc3161-client cannot parse this response and the openssl check is off")
    if openssl:
        reason = _openssl_verify(tsr, root, ca_pem, f.gen_time)
        check.second_opinion = "openssl: OK" if reason is None else f"openssl: {reason}"
        if reason is not None:
            problems.append(f"openssl: ts -verify failed: {reason}")
    digest_oid, signature_oid = _signer_algorithms(tsr)
    if digest_oid == SHA1_OID or signature_oid in SHA1_SIGNATURE_OIDS:
        problems.append("signature/chain: the token is signed over a SHA-1 digest, which is no longer collision-"
                        "resistant (SHA-256 or stronger required, as for the imprint); a TSA signing so cannot be used "
                        "(ask it for SHA-256 signatures: OpenSSL's signer_digest)")
    if problems and signature_oid == RSASSA_PSS_OID:
        problems.append("signature/chain: the token is signed with RSASSA-PSS, which the time-stamp verification of "
                        "OpenSSL (openssl ts -verify, rfc3161-client) cannot check, here or at an auditor's; a TSA "
                        "signing so cannot be used (ask it for RSA PKCS#1 v1.5 or ECDSA signatures)")
    if f.response is not None and not f.bag and problems and not any(not _is_ca(c) for c in certs):
        problems.append("signature/chain: the token carries no TSA certificate (its TSA ignored certReq); "
                        "the CA file must then hold the TSA's certificate beside its CA")
    if f.gen_time is None:
        problems.append("genTime: missing")
    else:
        if not_before is not None and f.gen_time < _aware(not_before) - CLOCK_SKEW:
            problems.append(f"genTime: {f.gen_time.isoformat()} is before {_aware(not_before).isoformat()} (implausible)")
        if not_after is not None and f.gen_time > _aware(not_after) + MAX_DELAY:
            problems.append(f"genTime: {f.gen_time.isoformat()} is later than {_aware(not_after).isoformat()} + {MAX_DELAY} (implausible)")
    return f


def _as_granted(tsr: bytes):
    """The parsed response with its bare PKIStatusInfo {grantedWithMods} read as {granted} (outside the
    signature, so the token is unchanged), or None when the status is not laid out that way."""
    mods = bytes.fromhex("3003020101")
    at = tsr.find(mods, 0, 16)
    if at < 0:
        return None
    try:
        from rfc3161_client import decode_timestamp_response

        return decode_timestamp_response(tsr[:at] + bytes.fromhex("3003020100") + tsr[at + len(mods):])
    except BaseException as exc:
        if _fatal(exc):
            raise
        return None


def _der_framing_problem(der: bytes) -> str | None:
    """Why ``der`` is not exactly one DER SEQUENCE (truncated, or trailing bytes), else None."""
    if len(der) < 2 or der[0] != 0x30:
        return "not a DER SEQUENCE"
    first = der[1]
    if first < 0x80:
        header, length = 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(der) < 2 + n:
            return "bad DER length"
        header, length = 2 + n, int.from_bytes(der[2 : 2 + n], "big")
    total = header + length
    if total > len(der):
        return f"truncated ({len(der)} of {total} bytes)"
    if total < len(der):
        return f"{len(der) - total} trailing bytes after the TimeStampResp"
    return None


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
