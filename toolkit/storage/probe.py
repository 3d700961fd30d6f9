"""Preflight probe of a medium or mirror (docs/reliability.md C4): prove create, write, read back, delete work,
and that the place keeps the case of a file name (C13: names such as ``MEDIUM.json`` and the sealed backups'
``…T…Z`` times are part of what is authenticated)."""
from __future__ import annotations

import secrets

from ..errors import StorageError
from .base import Storage

PROBE_DIR = ".probe"


def probe(storage: Storage) -> None:
    """Create ``.probe/Probe-<random>``, read it back, find it listed under that very name and delete it;
    StorageError names the failing step."""
    name = f"{PROBE_DIR}/Probe-{secrets.token_hex(8)}"
    payload = b"mailarchive probe " + secrets.token_bytes(32)

    def fail(step: str, exc: BaseException) -> StorageError:
        return StorageError(f"preflight probe of {storage.location} failed at step '{step}': {exc}")

    try:
        writer = storage.open_write(name)
    except Exception as exc:
        raise fail("create", exc) from None
    try:
        writer.write(payload)
    except Exception as exc:
        writer.abort()
        raise fail("write", exc) from None
    try:
        writer.commit()
    except Exception as exc:
        writer.abort()
        raise fail("rename into place", exc) from None
    try:
        back = storage.read(name)
    except Exception as exc:
        _delete_quietly(storage, name)
        raise fail("read back", exc) from None
    if back != payload:
        _delete_quietly(storage, name)
        raise StorageError(
            f"preflight probe of {storage.location} failed at step 'read back': "
            f"wrote {len(payload)} bytes, read {len(back)} different bytes"
        )
    try:
        listed = [e.name for e in storage.list(PROBE_DIR, include_temp=True)]
    except Exception as exc:
        _delete_quietly(storage, name)
        raise fail("list", exc) from None
    if name not in listed:
        _delete_quietly(storage, name)
        other = [n for n in listed if n.lower() == name.lower()]
        if other:
            _delete_quietly(storage, other[0])
        raise StorageError(
            f"preflight probe of {storage.location} failed at step 'list': the file written as {name} is listed as "
            + (f"{other[0]}: the place does not keep the case of file names (Samba's `preserve case = no`), and the "
               "archive's file names are part of what it authenticates; set `preserve case = yes` on the share "
               "(or use another place)" if other else "nothing: the place does not show what was written to it")
        )
    try:
        storage.delete(name)
    except Exception as exc:
        raise fail("delete", exc) from None


def _delete_quietly(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        pass
