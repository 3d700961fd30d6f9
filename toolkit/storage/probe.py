"""Preflight probe of a medium (docs/reliability.md C4): prove create, write, read back, delete work."""
from __future__ import annotations

import secrets

from ..errors import StorageError
from .base import Storage

PROBE_DIR = ".probe"


def probe(storage: Storage) -> None:
    """Create ``.probe/<random>``, read it back and delete it; StorageError names the failing step."""
    name = f"{PROBE_DIR}/{secrets.token_hex(8)}"
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
        storage.delete(name)
    except Exception as exc:
        raise fail("delete", exc) from None


def _delete_quietly(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        pass
