"""What the IMAP and POP3 importers share: a server source's URL, TLS settings, retry budget and counters.

Connecting, TLS, login and retry live in :mod:`toolkit.net` (shared with the
IMAP exporter and the TSA client); the names other modules import from here
are re-exported below.
"""
from __future__ import annotations

from toolkit.errors import AuthenticationError
from toolkit.net.retry import LINK_ERRORS, Retry, describe
from toolkit.net.tls import CertificateError, TlsRequiredError, tls_context
from toolkit.net.url import MailUrl, parse_mail_url

__all__ = ["LINK_ERRORS", "CertificateError", "MailUrl", "Retry", "ServerSource", "SourceAuthError",
           "TlsRequiredError", "describe", "parse_mail_url", "tls_context"]


class SourceAuthError(AuthenticationError):
    """The mail server rejected the user name or password (docs/reliability.md D12): not retried, to avoid a lockout."""


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

    def _login_options(self) -> dict:
        """The keyword arguments of :func:`toolkit.net.imap.connect` / :func:`toolkit.net.pop3.connect`."""
        u = self.url
        return dict(user=u.user, password=self._password, auth_error=SourceAuthError,
                    allow_plaintext=self.allow_plaintext, timeout=self.timeout, logging_in=self._logging_in)

    def _logging_in(self) -> None:
        self.logins += 1

    def _reconnecting(self) -> None:
        self.reconnects += 1
