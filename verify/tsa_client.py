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

``timeout`` bounds each attempt as a whole (a watchdog cuts the connection), not each read, so a TSA
trickling its answer cannot hold a run. Redirects are never followed (urllib would repeat the POST as an
empty GET, login included, to wherever the Location points): a 3xx is an error naming the Location. An
answer that is not a TimeStampResp is refused naming its HTTP status, size and Content-Type; the
Content-Type of a real token is not checked. The pinned policy, if any, is asked for (reqPolicy).

``grantedWithMods`` is accepted like ``granted`` (the token itself is then
verified in full, imprint and nonce included).
"""
from __future__ import annotations

import base64
import http.client
import math
import socket
import ssl
import threading
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


def build_query(root: bytes, policy: str | None = None) -> tuple[bytes, int]:
    """(DER TimeStampReq, nonce) via rfc3161-client: SHA-256(root) imprint, random 64-bit nonce, certReq;
    with ``policy`` (a dotted OID) the request asks for that TSA policy (reqPolicy), so that a TSA serving
    several policies answers under the pinned one instead of its default."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    req = (
        TimestampRequestBuilder().data(root).hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True).cert_request(cert_request=True).build()
    )
    der = req.as_bytes()
    if policy:
        _, start, end = _der_item(der, 0)
        _, _, imprint_end = _der_item(der, _der_item(der, start)[2])  # version, then messageImprint
        body = der[start:imprint_end] + _oid_der(policy) + der[imprint_end:end]
        der = b"\x30" + _der_length(len(body)) + body
    return der, int(req.nonce)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _oid_der(dotted: str) -> bytes:
    """The DER OBJECT IDENTIFIER of a dotted OID such as 1.3.6.1.4.1.55555.1.1."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"{dotted!r} is not an OID")
    body = b""
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return b"\x06" + _der_length(len(body)) + body


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


class _Watchdog:
    """Shuts an attempt's sockets down once ``seconds`` have passed, so that a TSA trickling its answer (a
    header line or a byte at a time, each within the socket timeout) cannot hold a run for longer than the
    timeout: the timeout bounds the whole attempt, connection, answer and body (docs/timestamps.md)."""

    def __init__(self, seconds: float):
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def add(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                self._shut(sock)
        return sock

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:  # the plain socket's shutdown: a TLS socket's own would drop its state under a reading thread
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would repeat a POST as an empty GET and send the login along to
    wherever the Location points; the 3xx is reported with its Location instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(watch: _Watchdog, context):
    """A urllib opener whose connections ``watch`` can cut (proxies from the environment still apply)."""

    def create(*args, **kwargs):
        return watch.add(socket.create_connection(*args, **kwargs))

    class Http(http.client.HTTPConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = create

    class Https(http.client.HTTPSConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = create

        def connect(self):
            super().connect()
            watch.add(self.sock)  # the TLS socket took the plain one's descriptor over (wrap_socket detaches it)

    class HttpHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Http, req)

    class HttpsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(Https, req, context=context)

    return urllib.request.build_opener(HttpHandler(), HttpsHandler(context=context), _NoRedirect())


def _printable(data: bytes, limit: int = 80) -> str:
    """The start of a body as one line of printable text, for an error message."""
    text = "".join(ch if ch.isprintable() else " " for ch in data[:limit * 2].decode("utf-8", errors="replace"))
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


@dataclass
class _Answer:
    body: bytes
    status: int
    content_type: str | None


def _post(url: str, query: bytes, timeout: float, access: TsaAccess) -> _Answer:
    plain_url, user = _split_user(url)
    headers = {"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"}
    if user is not None and access.password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{access.password}".encode()).decode("ascii")
    context = tls_context(ca_pem=access.tls_ca_pem or None) if plain_url.startswith("https://") else None
    req = urllib.request.Request(plain_url, data=query, method="POST", headers=headers)
    late = f"the TSA at {plain_url} did not answer within {timeout:g} s"
    with _Watchdog(timeout) as watch:
        try:
            try:
                with _opener(watch, context).open(req, timeout=timeout) as resp:
                    body = resp.read(MAX_RESPONSE + 1)
                    short = resp.length  # what the Content-Length promised and never came (None: no length)
                    answer = _Answer(body, resp.status, resp.headers.get("Content-Type"))
            except urllib.error.HTTPError as exc:
                _http_error(exc, plain_url, user, access)
        except _Transient:
            raise
        except TsaError:
            raise
        except (socket.timeout, TimeoutError):
            raise _Transient(late) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if watch.fired or isinstance(reason, (socket.timeout, TimeoutError)):
                raise _Transient(late) from None
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise TsaError(f"the TSA at {plain_url}: its TLS certificate is not trusted ({reason.verify_message})",
                               next_step=NextStep.GIVE_TSA_CA) from None
            raise _Transient(f"cannot reach the TSA at {plain_url}: {reason}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # connection reset, bad URL, cut answer
            if watch.fired:
                raise _Transient(late) from None
            raise _Transient(f"cannot reach the TSA at {plain_url}: {type(exc).__name__}: {exc}") from None
    if watch.fired:
        raise _Transient(late)
    if len(body) > MAX_RESPONSE:
        raise TsaError(f"the TSA at {plain_url} answered more than {MAX_RESPONSE} bytes; not a time-stamp response")
    if short:
        raise _Transient(f"the TSA at {plain_url} sent {len(body)} of the {len(body) + short} bytes it announced "
                         "(the connection closed early)")
    return answer


def _http_error(exc: urllib.error.HTTPError, plain_url: str, user: str | None, access: TsaAccess) -> None:
    """Raise the error of an HTTP status other than 2xx."""
    if exc.code in (401, 403, 407):
        who = f"as {user!r}" if user else "without a user name (put it in the URL: https://USER@host/...)"
        step = None if access.password is not None else NextStep.GIVE_TSA_PASSWORD
        raise TsaAuthError(f"the TSA at {plain_url} rejected the login {who} (HTTP {exc.code})", next_step=step) from None
    if 300 <= exc.code < 400:
        location = exc.headers.get("Location") if exc.headers else None
        if location:
            location = urllib.parse.urljoin(plain_url, location)
            raise TsaError(f"the TSA at {plain_url} redirects to {location} (HTTP {exc.code} {exc.reason}); "
                           "redirects are not followed", next_step=NextStep.TSA_MOVED,
                           hint_args={"location": location}) from None
        raise TsaError(f"the TSA at {plain_url} answered HTTP {exc.code} {exc.reason} without a Location") from None
    try:
        text = _printable(exc.read(4096)) if exc.headers is not None and exc.headers.get_content_maintype() == "text" else ""
    except (OSError, ValueError, http.client.HTTPException):
        text = ""
    said = f": {text}" if text else ""
    if exc.code == 429 or exc.code >= 500:
        raise _Transient(f"the TSA at {plain_url} answered HTTP {exc.code} {exc.reason}{said}") from None
    raise TsaError(f"the TSA at {plain_url} answered HTTP {exc.code} {exc.reason}{said}") from None


def request_stamp(url: str, root: bytes, *, timeout: float = 30, access: TsaAccess | None = None,
                  sleep: Callable[[float], None] = time.sleep, policy: str | None = None) -> tuple[bytes, int]:
    """(TimeStampResp DER, nonce) for ``root``; raises :class:`TsaError` on any failure (I4, I10).

    Transient failures are retried ``access.retries`` times (see the module doc); ``timeout`` bounds each
    attempt as a whole. ``policy`` is asked for in the request (the pinned TSA policy OID).
    """
    access = access or TsaAccess()
    if len(root) != 32:
        raise ValueError("a Merkle root is 32 bytes")
    retry = Retry(access.retries, access.backoff, max_delay=math.inf, deadline=None, sleep=sleep, jitter=0.0,
                  give_up=_gives_up)
    while True:
        try:
            return _request_once(url, root, timeout, access, policy)
        except _Transient as exc:
            retry.wait("time-stamp request", exc)  # raises TsaError when the retries are spent


def _gives_up(what: str, exc: BaseException, attempts: int, seconds: float) -> TsaError:
    return TsaError(f"{exc}" + (f" (after {attempts} attempts)" if attempts > 1 else ""))


def _request_once(url: str, root: bytes, timeout: float, access: TsaAccess, policy: str | None = None
                  ) -> tuple[bytes, int]:
    query, nonce = build_query(root, policy)
    answer = _post(url, query, timeout, access)
    body = answer.body
    url = _split_user(url)[0]
    if not body:
        raise TsaError(f"the TSA at {url} answered HTTP {answer.status} with an empty body, not a time-stamp response")
    try:
        fields = parse_fields(body)
    except ValueError as exc:
        ctype = answer.content_type or "no Content-Type"
        text = f" beginning {_printable(body)!r}" if ctype.lower().startswith("text/") else ""
        raise TsaError(f"the TSA at {url} answered {len(body)} bytes of {ctype}{text}, not a time-stamp response "
                       f"({exc})") from None
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
    if fields.nonce is None:
        raise TsaError(
            f"the TSA at {url} answered without the request's nonce, which RFC 3161 requires it to echo "
            f"(without it a replayed answer cannot be told from a fresh one); rejected"
        )
    if fields.nonce != nonce:
        raise TsaError(
            f"the TSA at {url} answered with nonce {fields.nonce!r}, not the request's {nonce} "
            f"(a replayed or foreign response); rejected"
        )
    return body, nonce
