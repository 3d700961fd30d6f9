"""The steps every mail session takes after the TCP (or TLS) connection is open, in one order.

STARTTLS/STLS when the server offers it (certificate checked), else a refusal
unless plaintext is allowed, then the login; any failure closes the
connection before it is raised. :mod:`toolkit.net.imap` and
:mod:`toolkit.net.pop3` supply the protocol's commands.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from .tls import certificate_checked, plaintext_refused

C = TypeVar("C")


@dataclass(frozen=True)
class StartTls:
    command: str                    # "STARTTLS", "STLS"
    tls_scheme: str                 # the URL scheme with TLS from the first byte ("imaps", "pop3s")
    offered: Callable[[], bool]
    start: Callable[[], None]


def quietly(*steps: Callable[[], object]) -> None:
    """Run ``steps`` in order until one succeeds; never raises (closing a connection that may be dead)."""
    for step in steps:
        try:
            step()
            return
        except Exception:
            continue


def establish(conn: C, where: str, starttls: StartTls | None, *, allow_plaintext: bool, login: Callable[[], None],
              close: Callable[[C], None], prepare: Callable[[], None] | None = None,
              logging_in: Callable[[], None] | None = None) -> C:
    """``conn`` secured (``starttls``; None: TLS already) and logged in, or closed and the error raised.

    ``prepare()`` runs first (per-connection settings), ``logging_in()`` right before the login is sent.
    """
    try:
        if prepare is not None:
            prepare()
        if starttls is not None:
            if starttls.offered():
                with certificate_checked(where):
                    starttls.start()
            elif not allow_plaintext:
                raise plaintext_refused(where, starttls.command, starttls.tls_scheme)
        if logging_in is not None:
            logging_in()
        login()
        return conn
    except BaseException:
        close(conn)
        raise


def login_rejected(error: type[Exception], user: str, where: str, text: str) -> Exception:
    """The server refused the user name or password: never retried (an account lockout)."""
    return error(f"{user}@{where}: login rejected ({text}). Check the user and password; "
                 "not retried, to avoid locking the account.")
