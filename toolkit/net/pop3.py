"""One POP3 session: connect, STLS with the certificate check, USER/PASS (docs/reliability.md D9, D11, D12).

The caller names the session classes (subclasses of ``poplib.POP3`` and
``poplib.POP3_SSL`` with its per-connection changes). A login refused because
the maildrop is in use or the server is busy (``[IN-USE]``, ``[SYS/TEMP]``,
"locked") is :class:`MaildropBusy`, a link failure that is retried; any other
refusal is the caller's ``auth_error`` and is not retried, except that a USER
refused by a server whose CAPA lists no USER (Cyrus without TLS: "USER command
only available under a layer") is :class:`~toolkit.net.tls.TlsRequiredError`:
PASS was not sent, and the password is not what is wrong.

A server that lists ``UTF8`` in CAPA (RFC 6856) is sent ``UTF8`` before the
login: Courier's POP3 otherwise replaces every mail with 8-bit header bytes by
a notice of its own (a new boundary each time), which would be archived in
place of the mail (docs/reliability.md D11).
"""
from __future__ import annotations

import poplib
import ssl
from typing import Callable

from toolkit.errors import AuthenticationError

from .session import StartTls, establish, login_rejected, quietly
from .tls import TlsRequiredError, certificate_checked


class MaildropBusy(EOFError):
    """The server refused the login for now (maildrop in use, temporary failure): reconnect later."""


def error_text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)


def close(conn: poplib.POP3 | None) -> None:
    """Drop the connection without QUIT; never raises."""
    if conn is not None:
        quietly(conn.close)


def _offers_stls(conn: poplib.POP3) -> bool:
    try:
        return "STLS" in conn.capa()
    except poplib.error_proto:
        return False


def _capabilities(conn: poplib.POP3) -> dict | None:
    """CAPA's answer (asked again after STLS: RFC 2595), or None when the server has no CAPA."""
    try:
        return conn.capa()
    except poplib.error_proto:
        return None


def _enable_utf8(conn: poplib.POP3, caps: dict | None) -> None:
    """Send UTF8 when CAPA lists it; a refusal changes nothing."""
    if caps is not None and "UTF8" in caps:
        try:
            conn._shortcmd("UTF8")
        except poplib.error_proto:
            pass


def connect(host: str, port: int, implicit_tls: bool, ctx: ssl.SSLContext, *, user: str, password: str,
            auth_error: type[AuthenticationError], allow_plaintext: bool = False, timeout: float = 60,
            plain: type[poplib.POP3] = poplib.POP3, secure: type[poplib.POP3_SSL] = poplib.POP3_SSL,
            logging_in: Callable[[], None] | None = None) -> poplib.POP3:
    """A logged-in session of class ``secure`` (pop3s) or ``plain`` (after STLS: still ``plain``)."""
    where = f"{host}:{port}"
    with certificate_checked(where):
        conn = secure(host, port, timeout=timeout, context=ctx) if implicit_tls else plain(host, port, timeout=timeout)
    starttls = None if implicit_tls else StartTls("STLS", "pop3s", lambda: _offers_stls(conn), lambda: conn.stls(ctx))

    def login() -> None:
        caps = _capabilities(conn)
        _enable_utf8(conn, caps)
        sent = "USER"
        try:
            conn.user(user)
            sent = "PASS"
            conn.pass_(password)
        except poplib.error_proto as exc:
            text = error_text(exc)
            if "[IN-USE]" in text or "[SYS/TEMP]" in text or "locked" in text.lower():
                raise MaildropBusy(f"maildrop busy: {text}") from None  # retryable (D11)
            if sent == "USER" and caps is not None and "USER" not in caps:  # not a wrong password: none was sent
                apop = b"<" in (getattr(conn, "welcome", b"") or b"")  # a greeting timestamp: APOP offered
                raise TlsRequiredError(
                    f"{where} does not take USER/PASS on this connection (CAPA lists no USER; it said: {text}): "
                    "the password was not sent. Use pop3s:// (or TLS on the server) if that is what it waits for; "
                    "allowing plaintext cannot change the server's rule"
                    + (" (its greeting offers APOP, which this import does not use)." if apop else ".")) from None
            raise login_rejected(auth_error, user, where, text) from None

    return establish(conn, where, starttls, allow_plaintext=allow_plaintext, login=login, close=close,
                     logging_in=logging_in)
