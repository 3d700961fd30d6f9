"""What the IMAP and POP3 importers share: URLs, TLS contexts, retry with backoff.

No globals are changed here or anywhere in the importers (STYLE.md): line
limits and debug levels are set per connection.
"""
from __future__ import annotations

import imaplib
import random
import ssl
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote, urlsplit

from toolkit.errors import AuthenticationError, SourceError, UsageError


class SourceAuthError(AuthenticationError):
    """The mail server rejected the user name or password (RELIABILITY D12): not retried, to avoid a lockout."""


class TlsRequiredError(SourceError):
    """The server offers no TLS and plaintext was not allowed (D9): the password was not sent."""


class CertificateError(SourceError):
    """The server's certificate did not verify (D9)."""


#: Failures of the link (reset, timeout, EOF, TLS record errors, imaplib's "abort") that a reconnect may cure.
LINK_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, imaplib.IMAP4.abort)


@dataclass(frozen=True)
class MailUrl:
    scheme: str
    user: str
    host: str
    port: int
    path: str           # the part after host[:port]/, percent-decoded ("" if none)
    implicit_tls: bool

    @property
    def source_uri(self) -> str:
        """The URL without the path: the cursor key (a user name never carries a secret)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{self.user}@{host}:{self.port}"


def parse_mail_url(url: str, schemes: dict[str, tuple[int, bool]]) -> MailUrl:
    """``scheme://user@host[:port][/path]``; schemes maps a scheme to (default port, implicit TLS)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise UsageError(f"{url}: expected one of {', '.join(s + '://' for s in schemes)}")
    if parts.password is not None:
        raise UsageError(f"{url}: no password in the URL; use --password-file or the environment variable")
    if not parts.username or not parts.hostname:
        raise UsageError(f"{url}: expected {scheme}://USER@HOST[:PORT]")
    try:
        port = parts.port or schemes[scheme][0]
    except ValueError:
        raise UsageError(f"{url}: bad port") from None
    return MailUrl(scheme, unquote(parts.username), parts.hostname, port, unquote(parts.path.lstrip("/")), schemes[scheme][1])


def tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """Verifying context (system store, or only ``ca_file``); ``insecure`` turns verification off explicitly."""
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot read the CA file {ca_file}: {exc}") from None


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


class Retry:
    """Bounded exponential backoff (RELIABILITY D1-D3): ``retries`` attempts in a row, ``deadline`` seconds in all.

    ``reset()`` after progress, so a long import survives several separate drops
    but a link that fails on every attempt ends the run in bounded time.
    """

    def __init__(self, retries: int = 5, backoff: float = 1.0, max_delay: float = 30.0, deadline: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.retries, self.backoff, self.max_delay, self.deadline = retries, backoff, max_delay, deadline
        self._sleep = sleep
        self.failures = 0
        self.total_failures = 0
        self._first_failure: float | None = None

    def reset(self) -> None:
        self.failures = 0
        self._first_failure = None

    def wait(self, what: str, exc: BaseException) -> None:
        """Sleep before the next attempt, or raise SourceError when the budget is spent."""
        now = time.monotonic()
        if self._first_failure is None:
            self._first_failure = now
        self.failures += 1
        self.total_failures += 1
        if self.failures > self.retries or now - self._first_failure > self.deadline:
            raise SourceError(
                f"{what}: {describe(exc)}; gave up after {self.failures} attempts in "
                f"{now - self._first_failure:.0f} s. Check the server and the network, then rerun: the import resumes."
            ) from None
        delay = min(self.max_delay, self.backoff * (2 ** (self.failures - 1)))
        delay *= 1 + random.random() * 0.1
        delay = min(delay, max(0.0, self.deadline - (now - self._first_failure)))
        self._sleep(delay)


class ServerSource:
    """What the IMAP and POP3 importers share: the URL, TLS settings, the retry budget and counters."""

    incremental = True  # the pipeline keeps the cursor after a completed run

    def __init__(self, url: str, password: str, schemes: dict[str, tuple[int, bool]], *, ca_file: str | None,
                 insecure: bool, allow_plaintext: bool, timeout: float, retries: int, backoff: float,
                 retry_deadline: float):
        self.url = parse_mail_url(url, schemes)
        self.source_uri = self.url.source_uri
        self._password = password
        self._ctx = tls_context(ca_file, insecure)
        self.allow_plaintext = allow_plaintext
        self.timeout = timeout
        self._retry = Retry(retries, backoff, deadline=retry_deadline)
        self.logins = 0
        self.reconnects = 0

    def __repr__(self) -> str:  # never shows the password
        return f"{type(self).__name__}({self.source_uri!r})"
