"""A full export target (docs/reliability.md E4): the export stops with an error naming the target and
its free space, instead of an OSError the command line could only blame on its own output.

The export writers already leave nothing half-written under a final name (temporary ``.part``
files, removed again) and write the completion manifest last, so a stopped export has no
manifest; a rerun onto a target with room keeps the finished files and completes it.
"""
from __future__ import annotations

import errno
import functools
import shutil
from pathlib import Path

from toolkit.errors import NextStep, StorageFullError

_FULL = {errno.ENOSPC, errno.EDQUOT}


def free_bytes(path: Path) -> int | None:
    """Free bytes on the volume of ``path`` (its nearest existing parent), None when unknown."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def target_full_error(dest: Path, exc: OSError) -> StorageFullError:
    free = free_bytes(dest)
    room = "unknown" if free is None else f"{free} bytes free"
    return StorageFullError(
        f"export to {dest} stopped: its volume is full ({exc.strerror}; {room} there); no completion "
        f"manifest was written", next_step=NextStep.FREE_EXPORT_TARGET, hint_args={"dest": str(dest)},
    )


def stops_when_full(export):
    """Decorate ``export(archive, dest, ...)``: ENOSPC/EDQUOT while writing becomes :func:`target_full_error`."""

    @functools.wraps(export)
    def wrapper(archive, dest, *args, **kw):
        try:
            return export(archive, dest, *args, **kw)
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            raise target_full_error(Path(dest), exc) from None

    return wrapper
