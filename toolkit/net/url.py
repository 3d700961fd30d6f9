"""Mail server URLs: ``scheme://user@host[:port][/path]``, never with a password."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from toolkit.errors import NextStep, UsageError


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
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [ of an IPv6 host
        raise UsageError(f"{url}: not a URL ({exc}); expected scheme://USER@HOST[:PORT]") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise UsageError(f"{url}: expected one of {', '.join(s + '://' for s in schemes)}")
    if parts.password is not None:
        raise UsageError(f"{url}: no password in the URL", next_step=NextStep.PASSWORD_NOT_IN_URL)
    if not parts.username or not parts.hostname:
        raise UsageError(f"{url}: expected {scheme}://USER@HOST[:PORT]")
    try:
        port = parts.port or schemes[scheme][0]
    except ValueError:
        raise UsageError(f"{url}: bad port") from None
    return MailUrl(scheme, unquote(parts.username), parts.hostname, port, unquote(parts.path.lstrip("/")), schemes[scheme][1])
