"""Locations: a plain path or ``smb://user@host[:port]/share/path``. One class per scheme."""
from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import NextStep, UsageError
from .base import Storage

SMB_DEFAULT_PORT = 445


@dataclass(frozen=True)
class Location:
    scheme: str            # "local" or "smb"
    path: str              # local: absolute path; smb: path inside the share ('' for the share root)
    user: str | None = None
    host: str | None = None
    port: int | None = None
    share: str | None = None

    def __str__(self) -> str:
        if self.scheme == "local":
            return self.path
        tail = f"/{self.path}" if self.path else ""
        return f"smb://{self.user}@{self.host}:{self.port}/{self.share}{tail}"

    @property
    def is_smb(self) -> bool:
        return self.scheme == "smb"


def parse_location(text: str) -> Location:
    """Parse a medium/source location. A password inside the URL is refused (argv is visible)."""
    if text.startswith("smb://"):
        try:
            u = urlsplit(text)
            port = u.port  # ValueError for a port that is not a number in 0-65535
        except ValueError as exc:  # an unclosed [ of an IPv6 host, or that port
            raise UsageError(f"{text}: not a valid smb:// location ({exc}); expected "
                             "smb://user@host[:port]/share/path") from None
        if u.password is not None:
            raise UsageError(
                "a password in an smb:// location would be visible in the process list",
                next_step=NextStep.SMB_PASSWORD_NOT_IN_URL,
            )
        if not u.hostname or not u.username:
            raise UsageError(f"{text}: expected smb://user@host[:port]/share/path")
        parts = [unquote(p) for p in u.path.split("/") if p]
        if not parts:
            raise UsageError(f"{text}: the share name is missing (smb://user@host[:port]/share/path)")
        return Location(
            scheme="smb",
            path="/".join(parts[1:]),
            user=unquote(u.username),
            host=u.hostname,
            port=port or SMB_DEFAULT_PORT,
            share=parts[0],
        )
    if "://" in text:
        raise UsageError(f"{text}: unknown scheme (a path or smb://user@host[:port]/share/path)")
    return Location(scheme="local", path=os.path.abspath(os.path.expanduser(text)))


#: Defaults for SMB storages opened later in this process (set once by the CLI: --smb-no-encrypt, its warnings).
SMB_DEFAULTS: dict = {"encrypt": True, "warn": None}


def configure_smb(*, encrypt: bool = True, warn=None) -> None:
    """Ask SMB servers for encryption (default) or not; ``warn(message)`` receives connection warnings."""
    SMB_DEFAULTS["encrypt"] = bool(encrypt)
    SMB_DEFAULTS["warn"] = warn


def open_storage(location: str | Location, password: str | None = None, timeout: float = 60.0,
                 encrypt: bool | None = None, client_guid=None) -> Storage:
    """The Storage for a location. SMB needs the password (the caller reads it from its secret source).

    ``encrypt``: ask for SMB3 encryption (None: the process default, on unless ``--smb-no-encrypt``).
    ``client_guid``: an SMB storage's client GUID, to open another channel of that storage's client (one server
    process serves both); None, a client of its own (docs/reliability.md C21).
    """
    loc = parse_location(location) if isinstance(location, str) else location
    if loc.scheme == "local":
        from .local import LocalStorage

        return LocalStorage(loc.path)
    from .smb import SmbStorage

    if password is None:
        raise UsageError(
            f"{loc}: no SMB password", next_step=NextStep.GIVE_SMB_PASSWORD
        )
    return SmbStorage(loc, password, timeout=timeout, encrypt=encrypt, client_guid=client_guid)
