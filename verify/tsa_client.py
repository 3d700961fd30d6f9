"""Asking an RFC 3161 TSA over HTTP to stamp a Merkle root (DESIGN §8, RELIABILITY I4, I10).

The request carries the SHA-256 of the 32 root bytes as message imprint, a
random 64-bit nonce and certReq (the TSA certificate comes back in the
token). The whole TimeStampResp is returned for storing; it is *not* fully
verified here (``verify.tokens.verify_token`` does that), only its status
and nonce, so a refused or replayed answer never reaches the catalog.
"""
from __future__ import annotations

import socket
import urllib.error
import urllib.request

from toolkit.errors import AuthenticationError, ExitCode, MailArchiveError

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


def request_stamp(url: str, root: bytes, *, timeout: float = 30) -> tuple[bytes, int]:
    """(TimeStampResp DER, nonce) for ``root``; raises :class:`TsaError` on any failure (I4, I10)."""
    if len(root) != 32:
        raise ValueError("a Merkle root is 32 bytes")
    query, nonce = build_query(root)
    req = urllib.request.Request(
        url, data=query, method="POST",
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 407):
            raise TsaAuthError(
                f"the TSA at {url} rejected the login (HTTP {exc.code} {exc.reason}): check the TSA user and password"
            ) from None
        raise TsaError(f"the TSA at {url} answered HTTP {exc.code} {exc.reason}") from None
    except (socket.timeout, TimeoutError):
        raise TsaError(f"the TSA at {url} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise TsaError(f"the TSA at {url} did not answer within {timeout:g} s") from None
        raise TsaError(f"cannot reach the TSA at {url}: {reason}") from None
    except (OSError, ValueError) as exc:  # connection reset, bad URL
        raise TsaError(f"cannot reach the TSA at {url}: {exc}") from None
    if len(body) > MAX_RESPONSE:
        raise TsaError(f"the TSA at {url} answered more than {MAX_RESPONSE} bytes; not a time-stamp response")
    try:
        fields = parse_fields(body)
    except ValueError as exc:
        raise TsaError(f"the TSA at {url} answered something that is not a time-stamp response ({exc})") from None
    if fields.status != 0:
        what = _STATUS.get(fields.status, str(fields.status))
        detail = f": {fields.status_text}" if fields.status_text else ""
        raise TsaError(f"the TSA at {url} did not grant the time-stamp (status {what}{detail})")
    if fields.nonce != nonce:
        raise TsaError(
            f"the TSA at {url} answered with nonce {fields.nonce!r}, not the request's {nonce} "
            f"(a replayed or foreign response); rejected"
        )
    return body, nonce
