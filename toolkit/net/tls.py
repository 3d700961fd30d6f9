"""TLS for every client: one way to build the context and one wording for its refusals (docs/reliability.md D9).

A context verifies the server's certificate and host name against the
system's trust store, or only against the CA given (``--ca-file`` or PEM
bytes); ``insecure`` turns verification off, and only when asked for. A
server that offers no STARTTLS/STLS gets no password unless plaintext was
explicitly allowed.
"""
from __future__ import annotations

import ssl
from contextlib import contextmanager
from typing import Iterator

from toolkit.errors import NextStep, SourceError, UsageError


class TlsRequiredError(SourceError):
    """The server offers no TLS and plaintext was not allowed (D9): the password was not sent."""


class CertificateError(SourceError):
    """The server's certificate did not verify (D9)."""


def tls_context(ca_file: str | None = None, insecure: bool = False, *, ca_pem: bytes | None = None) -> ssl.SSLContext:
    """Verifying context (system store, or only ``ca_file`` / ``ca_pem``); ``insecure`` turns verification off."""
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_pem is not None:
        return ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    try:
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot read the CA file {ca_file}: {exc}") from None


@contextmanager
def certificate_checked(where: str) -> Iterator[None]:
    """A certificate that does not verify inside the block becomes :class:`CertificateError` (never retried)."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"{where}: the server certificate does not verify ({exc.verify_message})",
                               next_step=NextStep.GIVE_CA) from None


def plaintext_refused(where: str, command: str, tls_scheme: str) -> TlsRequiredError:
    """The error for a server that offers no ``command`` (STARTTLS, STLS) when plaintext is not allowed."""
    return TlsRequiredError(
        f"{where} does not offer {command} (or something on the way removed it): the password was not sent.",
        next_step=NextStep.USE_TLS, hint_args={"tls_scheme": tls_scheme},
    )
