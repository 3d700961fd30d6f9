"""One IMAP session for the importer and the exporter: connect, STARTTLS with the certificate check, login.

``imap://`` sends the password only after STARTTLS (or with
``allow_plaintext``); ``imaps://`` is TLS from the first byte. A certificate
that does not verify is :class:`~toolkit.net.tls.CertificateError`, a missing
STARTTLS :class:`~toolkit.net.tls.TlsRequiredError`, a rejected login the
caller's ``auth_error`` class: none of them is retried (D9, D12). A server that
announces LOGINDISABLED (Cyrus without TLS) is not sent LOGIN, so the password
stays here: :class:`~toolkit.net.tls.TlsRequiredError`, not a "wrong password".
"""
from __future__ import annotations

import ssl
from typing import Callable

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import LoginError

from toolkit.errors import AuthenticationError

from .session import StartTls, establish, login_rejected, quietly
from .tls import TlsRequiredError, certificate_checked


class _GreetingCapabilities:
    """imaplib asks CAPABILITY right after the greeting; a greeting that carries them already
    (``* OK [CAPABILITY ...]``: Dovecot, Cyrus) is taken at its word: one round trip less per connection,
    which over a long link is paid again by every worker process that logs in. The list is as trusted as
    the one the command would bring (the same connection, before any TLS); after STARTTLS imaplib asks
    again, as RFC 3501 wants, and so does a greeting without them."""

    _greeted = False

    def _get_capabilities(self):
        if not self._greeted:
            self._greeted = True
            said = self.untagged_responses.pop("CAPABILITY", None)
            if said and said[-1]:
                self.capabilities = tuple(str(said[-1], self._encoding).upper().split())
                return
        super()._get_capabilities()


class _Imap4(_GreetingCapabilities, imap4.IMAP4WithTimeout):
    pass


class _Imap4Tls(_GreetingCapabilities, tls.IMAP4_TLS):
    pass


class _Client(IMAPClient):
    """imapclient's client on imaplib connections that take the greeting's capabilities (above)."""

    def _create_IMAP4(self):
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _Imap4Tls(self.host, self.port, self.ssl_context, timeout)
        return _Imap4(self.host, self.port, timeout)


def server_text(exc: BaseException) -> str:
    """An imapclient error's text without the ``b'...'`` around the server's words."""
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text or type(exc).__name__


def close(client: IMAPClient | None, logout: bool = False) -> None:
    """Drop the connection (after LOGOUT with ``logout``); never raises."""
    if client is not None:
        quietly(*([client.logout] if logout else []), client.shutdown)


def connect(host: str, port: int, implicit_tls: bool, ctx: ssl.SSLContext, *, user: str, password: str,
            auth_error: type[AuthenticationError], allow_plaintext: bool = False, timeout: float = 60,
            prepare: Callable[[IMAPClient], None] | None = None,
            logging_in: Callable[[], None] | None = None) -> IMAPClient:
    """A logged-in client. ``prepare(client)`` runs before STARTTLS (per-connection settings),
    ``logging_in()`` right before LOGIN is sent (a login counter)."""
    where = f"{host}:{port}"
    with certificate_checked(where):
        client = _Client(host, port=port, ssl=implicit_tls, ssl_context=ctx, timeout=timeout)
    starttls = None if implicit_tls else StartTls(
        "STARTTLS", "imaps", lambda: b"STARTTLS" in client.capabilities(), lambda: client.starttls(ctx))

    def login() -> None:
        # imaplib's list, asked again after STARTTLS (imapclient may keep the greeting's from before it)
        if "LOGINDISABLED" in client._imap.capabilities:  # RFC 3501: the client must not send LOGIN
            raise TlsRequiredError(
                f"{where} refuses LOGIN on this connection (LOGINDISABLED: it wants TLS first"
                f"{'' if implicit_tls else ' and offers no STARTTLS'}): the password was not sent. "
                "Use imaps:// (or TLS on the server); allowing plaintext cannot change the server's rule.")
        try:
            client.login(user, password)
        except LoginError as exc:
            raise login_rejected(auth_error, user, where, server_text(exc)) from None

    def settings() -> None:
        client._imap.debug = 0  # imapclient sets 5: every literal formatted as log text (3-4x slower)
        if prepare is not None:
            prepare(client)

    return establish(client, where, starttls, allow_plaintext=allow_plaintext, login=login, close=close,
                     prepare=settings, logging_in=logging_in)
