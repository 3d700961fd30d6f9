"""Asking an RFC 3161 TSA over HTTP to stamp a Merkle root (docs/timestamps.md, docs/reliability.md I4, I10).

The request carries the SHA-256 of the 32 root bytes as message imprint, a
random 64-bit nonce and certReq (the TSA certificate comes back in the
token). The whole TimeStampResp is returned for storing; it is *not* fully
verified here (``verify.tokens.verify_token`` does that), only its status
and nonce, so a refused or replayed answer never reaches the catalog.

:class:`TsaAccess` holds how to reach a TSA beyond its URL:

* ``tls_ca_pem``: the CA certificate(s) an https:// TSA's server
  certificate must chain to (else the system's trust store);
* ``password``: HTTP basic authentication, with the user name from the URL
  (``https://user@host/path``); the password never travels in the URL or
  on the command line. HTTP 401/403 raise :class:`AuthenticationError`
  (exit 4) and are never retried (account lockout);
* ``retries`` and ``backoff``: a connection failure, a timeout, HTTP 429 or
  5xx, the PKIStatus ``waiting`` and the failures timeNotAvailable and
  systemFailure are retried after ``backoff``, doubled each time; every
  other refusal fails at once with its status, text and failure reasons.

The TLS context and the backoff come from :mod:`toolkit.net` (the same code
as the IMAP and POP3 clients use); the pauses here have no jitter and no cap.

``grantedWithMods`` is accepted like ``granted`` (the token itself is then
verified in full, imprint and nonce included).
"""
from __future__ import annotations

import base64
import math
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from toolkit.errors import AuthenticationError, ExitCode, MailArchiveError, NextStep
from toolkit.net.retry import Retry
from toolkit.net.tls import tls_context

from .tokens import parse_fields

MAX_RESPONSE = 1 << 20
_STATUS = {1: "grantedWithMods", 2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}


class TsaError(MailArchiveError):
    """The TSA could not be reached, failed, refused, or answered something unusable; a rerun retries."""

    exit_code = ExitCode.OPERATIONAL


class TsaAuthError(TsaError, AuthenticationError):
    """The TSA answered 401/407: a rejected login has its own exit status (4), like SMB, IMAP and POP3."""

    exit_code = ExitCode.AUTH_FAILED


def build_query(root: bytes) -> tuple[bytes, int]:
    """(DER TimeStampReq, nonce) via rfc3161-client: SHA-256(root) imprint, random 64-bit nonce, certReq."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    req = (
        TimestampRequestBuilder().data(root).hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True).cert_request(cert_request=True).build()
    )
    return req.as_bytes(), int(req.nonce)


@dataclass
class TsaAccess:
    tls_ca_pem: bytes | None = None
    password: str | None = None
    retries: int = 0
    backoff: float = 1.0


#: PKIFailureInfo bits (RFC 3161 §2.4.2) and what each means to the user
FAIL_INFO = {
    0: ("badAlg", "the TSA does not accept the hash algorithm"),
    2: ("badRequest", "the TSA refused the request as malformed or not permitted"),
    5: ("badDataFormat", "the TSA could not read the request"),
    14: ("timeNotAvailable", "the TSA's time source is not available"),
    15: ("unacceptedPolicy", "the TSA does not support the requested policy"),
    16: ("unacceptedExtension", "the TSA does not support a requested extension"),
    17: ("addInfoNotAvailable", "the TSA cannot provide the requested additional information"),
    25: ("systemFailure", "the TSA failed internally"),
}
#: failures that may pass on their own: retried like a timeout
TRANSIENT_FAIL_BITS = {14, 25}


def _der_item(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at ``at``."""
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, at + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[at + 2: at + 2 + n], "big")
    return tag, at + 2 + n, at + 2 + n + length


def fail_info_bits(response: bytes) -> set[int]:
    """The PKIFailureInfo bits of a TimeStampResp's PKIStatusInfo (empty when absent or unreadable)."""
    try:
        _, start, _ = _der_item(response, 0)                 # TimeStampResp SEQUENCE
        tag, at, end = _der_item(response, start)            # PKIStatusInfo SEQUENCE
        while at < end:
            tag, c0, c1 = _der_item(response, at)
            if tag == 0x03 and c1 > c0:                      # failInfo BIT STRING
                bits, body = set(), response[c0 + 1: c1]
                for i, byte in enumerate(body):
                    bits |= {i * 8 + k for k in range(8) if byte & (0x80 >> k)}
                return bits
            at = c1
    except IndexError:
        pass
    return set()


class _Transient(Exception):
    """A failure worth another attempt."""


def check_tsa_url(url: str) -> str:
    """``url`` when it is an http:// or https:// URL with a host (and a port in range, if any); else a
    UsageError naming it: a typo is refused where it is typed, never a traceback at the first stamp."""
    from toolkit.errors import UsageError

    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise UsageError(f"TSA URL {url!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"TSA URL {url!r} is not an http:// or https:// URL with a host")
    if parts.password is not None:
        raise UsageError(f"TSA URL {url!r}: no password in the URL (it would show in the process list and the "
                         "configuration); give the password apart from the URL")
    return url


def _split_user(url: str) -> tuple[str, str | None]:
    """(URL without user info, user name or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), urllib.parse.unquote(parts.username)


def _post(url: str, query: bytes, timeout: float, access: TsaAccess) -> bytes:
    plain_url, user = _split_user(url)
    headers = {"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"}
    if user is not None and access.password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{access.password}".encode()).decode("ascii")
    context = tls_context(ca_pem=access.tls_ca_pem or None) if plain_url.startswith("https://") else None
    req = urllib.request.Request(plain_url, data=query, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            body = resp.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 407):
            who = f"as {user!r}" if user else "without a user name (put it in the URL: https://USER@host/...)"
            step = None if access.password is not None else NextStep.GIVE_TSA_PASSWORD
            raise TsaAuthError(f"the TSA at {plain_url} rejected the login {who} (HTTP {exc.code})", next_step=step) from None
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"the TSA at {plain_url} answered HTTP {exc.code} {exc.reason}") from None
        raise TsaError(f"the TSA at {plain_url} answered HTTP {exc.code} {exc.reason}") from None
    except (socket.timeout, TimeoutError):
        raise _Transient(f"the TSA at {plain_url} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _Transient(f"the TSA at {plain_url} did not answer within {timeout:g} s") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise TsaError(f"the TSA at {plain_url}: its TLS certificate is not trusted ({reason.verify_message})",
                           next_step=NextStep.GIVE_TSA_CA) from None
        raise _Transient(f"cannot reach the TSA at {plain_url}: {reason}") from None
    except (OSError, ValueError) as exc:  # connection reset, bad URL
        raise _Transient(f"cannot reach the TSA at {plain_url}: {exc}") from None
    if len(body) > MAX_RESPONSE:
        raise TsaError(f"the TSA at {plain_url} answered more than {MAX_RESPONSE} bytes; not a time-stamp response")
    return body


def request_stamp(url: str, root: bytes, *, timeout: float = 30, access: TsaAccess | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[bytes, int]:
    """(TimeStampResp DER, nonce) for ``root``; raises :class:`TsaError` on any failure (I4, I10).

    Transient failures are retried ``access.retries`` times (see the module doc).
    """
    access = access or TsaAccess()
    if len(root) != 32:
        raise ValueError("a Merkle root is 32 bytes")
    retry = Retry(access.retries, access.backoff, max_delay=math.inf, deadline=None, sleep=sleep, jitter=0.0,
                  give_up=_gives_up)
    while True:
        try:
            return _request_once(url, root, timeout, access)
        except _Transient as exc:
            retry.wait("time-stamp request", exc)  # raises TsaError when the retries are spent


def _gives_up(what: str, exc: BaseException, attempts: int, seconds: float) -> TsaError:
    return TsaError(f"{exc}" + (f" (after {attempts} attempts)" if attempts > 1 else ""))


def _request_once(url: str, root: bytes, timeout: float, access: TsaAccess) -> tuple[bytes, int]:
    query, nonce = build_query(root)
    body = _post(url, query, timeout, access)
    url = _split_user(url)[0]
    try:
        fields = parse_fields(body)
    except ValueError as exc:
        raise TsaError(f"the TSA at {url} answered something that is not a time-stamp response ({exc})") from None
    detail = f": {fields.status_text}" if fields.status_text else ""
    if fields.status == 3:
        raise _Transient(f"the TSA at {url} answered 'waiting' (status 3{detail}); no token yet")
    if fields.status not in (0, 1):
        what = _STATUS.get(fields.status, str(fields.status))
        bits = fail_info_bits(body)
        why = "; ".join(f"{FAIL_INFO[b][0]}: {FAIL_INFO[b][1]}" for b in sorted(bits) if b in FAIL_INFO)
        message = f"the TSA at {url} did not grant the time-stamp (status {what}{detail})" + (f" — {why}" if why else "")
        if bits & TRANSIENT_FAIL_BITS:
            raise _Transient(message)
        raise TsaError(message)
    if fields.nonce != nonce:
        raise TsaError(
            f"the TSA at {url} answered with nonce {fields.nonce!r}, not the request's {nonce} "
            f"(a replayed or foreign response); rejected"
        )
    return body, nonce
