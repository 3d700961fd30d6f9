"""A pack-task job that names a file on an SMB share: the worker reads it over its own connection
(docs/architecture.md).

``import maildir smb://…`` and ``import share smb://…`` list the tree in the
driver, which then hands the pipeline one :class:`ShareFile` per message file
instead of reading it: the worker opens (once per process, then keeps) its own
connection to the share with the password the job carries (never the
environment: docs/architecture.md "no environment in the core") and reads the
file there. Before reading it looks at the file again: a file whose size or
modification time differs from the listing's, or that is gone, gives a
:class:`~toolkit.prepare.ReadFailure` that the importer lists (a vanished file
as a skip, a changed one as a problem); a file cut short while it is read too.
"""
from __future__ import annotations

import errno as errnos
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from .errors import ObjectMissingError, StorageError
from .prepare import NotMail, ReadFailure, Trimmed
from .storage import Location, Storage
from .storage.location import SMB_DEFAULTS, open_storage

#: open share connections of this process, per (location, password, encrypt); the oldest is closed past this many
MAX_OPEN = 4
_OPEN: OrderedDict[tuple, Storage] = OrderedDict()
#: a listing's time stamp has microseconds, a stat's the server's 100 ns: the same time may differ by less than this
MTIME_SLACK = 2e-6


@dataclass(frozen=True)
class ShareAccess:
    """Where the files of a job lie and how to log in; the password never shows in a repr."""

    location: Location
    password: str | None = field(default=None, repr=False)
    encrypt: bool = True

    @classmethod
    def of(cls, location: Location, password: str | None) -> ShareAccess:
        """The access the driver's own connections use (its SMB encryption setting included)."""
        return cls(location, password, bool(SMB_DEFAULTS["encrypt"]))


class ShareFile(NamedTuple):
    """Read the file ``name`` (relative to ``access.location``) whose listing said ``size`` bytes at ``mtime``."""

    access: ShareAccess
    name: str
    size: int
    mtime: float
    #: a module-level function of the bytes read (or a partial of one) run where they are read, as a local file's
    #: ``cut`` (:class:`toolkit.prepare.LocalFile`): a Trimmed or NotMail it returns is the read's result
    cut: Callable[[bytes], Trimmed | NotMail | None] | None = None

    def read(self) -> bytes | ReadFailure | Trimmed | NotMail:
        try:
            storage = _storage(self.access)
            entry = storage.stat(self.name)
            if entry is None:
                return ReadFailure(errnos.ENOENT, "vanished after the scan")
            if entry.size != self.size or abs(entry.mtime - self.mtime) > MTIME_SLACK:
                return ReadFailure(0, f"changed after the scan (size {self.size} -> {entry.size} bytes, "
                                      f"modified {self.mtime} -> {entry.mtime})")
            data = storage.read(self.name)
        except ObjectMissingError:
            return ReadFailure(errnos.ENOENT, "vanished after the scan")
        except (OSError, StorageError) as exc:
            _forget(self.access)  # the next job connects again
            return ReadFailure(getattr(exc, "errno", None) or 0, getattr(exc, "strerror", None) or str(exc))
        if len(data) != self.size:
            return ReadFailure(0, f"changed while it was read ({len(data)} bytes, the scan saw {self.size})")
        if self.cut is not None and (cut := self.cut(data)) is not None:
            return cut
        return data


def _key(access: ShareAccess) -> tuple:
    return (access.location, access.password, access.encrypt)


def _storage(access: ShareAccess) -> Storage:
    key = _key(access)
    storage = _OPEN.get(key)
    if storage is None:
        storage = open_storage(access.location, access.password, encrypt=access.encrypt)
        _OPEN[key] = storage
        while len(_OPEN) > MAX_OPEN:
            _close(_OPEN.popitem(last=False)[1])
    else:
        _OPEN.move_to_end(key)
    return storage


def open_shared(access: ShareAccess, name: str):
    """A file on the share opened for reading over this process's own connection for ``access`` (kept open, as a
    job's is): a large mail streamed after the scan that listed it has closed its connection."""
    try:
        return _storage(access).open_read(name)
    except (OSError, StorageError):
        _forget(access)  # the next open connects again
        raise


def _forget(access: ShareAccess) -> None:
    storage = _OPEN.pop(_key(access), None)
    if storage is not None:
        _close(storage)


def _close(storage: Storage) -> None:
    try:
        storage.close()
    except (OSError, StorageError):
        pass


__all__ = ["ShareAccess", "ShareFile", "open_shared"]
