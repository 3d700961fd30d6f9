"""Medium labels (MEDIUM.json) and opening a medium's storage with its label checked.

The label names the archive uuid and the medium ID and carries an HMAC under
the archive's ``medium-mac`` key, so a medium of another archive, another ID,
or a hand-edited label is refused before anything is read or written.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib
from typing import Iterator

from . import crypto
from .errors import ForeignArchiveError, MediumError, MediumLabelError, NextStep, ObjectMissingError, StorageError
from .storage import Storage

LABEL_NAME = "MEDIUM.json"
#: the archive format a medium holds (toolkit/config.py FORMAT_VERSION: v2 packs are checksummed with BLAKE3)
LABEL_FORMAT = 2


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def make_label(key: bytes, archive_uuid: uuidlib.UUID, medium_id: int) -> bytes:
    body = {
        "archive": str(archive_uuid),
        "medium": medium_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "format": LABEL_FORMAT,
    }
    mac_key = crypto.derive_key(key, archive_uuid, "medium-mac")
    return json.dumps({**body, "hmac": crypto.mac(mac_key, _canonical(body))}, indent=2).encode() + b"\n"


def check_label(data: bytes, key: bytes, archive_uuid: uuidlib.UUID, medium_id: int, where: str) -> dict:
    try:
        label = json.loads(data)
        tag = label.pop("hmac")
        body_archive, body_medium = label["archive"], label["medium"]
    except (ValueError, KeyError, TypeError):
        raise MediumLabelError(f"{where}/{LABEL_NAME} is not a medium label (damaged or not ours)") from None
    if body_archive != str(archive_uuid):
        raise ForeignArchiveError(
            f"{where} is medium {body_medium} of another archive ({body_archive}), "
            f"not of this archive ({archive_uuid}); check the location"
        )
    if body_medium != medium_id:
        raise MediumLabelError(
            f"{where} is labelled as medium {body_medium} of this archive, not medium {medium_id}; "
            f"check the location", next_step=NextStep.RETARGET_MEDIUM
        )
    mac_key = crypto.derive_key(key, archive_uuid, "medium-mac")
    if not crypto.mac_ok(mac_key, _canonical(label), tag):
        raise MediumLabelError(f"{where}/{LABEL_NAME}: the label's HMAC does not match (tampered, or another key)")
    fmt = label.get("format")
    if fmt != LABEL_FORMAT:
        newer = isinstance(fmt, int) and fmt > LABEL_FORMAT
        raise MediumLabelError(
            f"{where} holds archive format v{fmt}, this toolkit reads v{LABEL_FORMAT}: "
            + ("it needs a newer mailarchive-toolkit" if newer else
               "an older format (SHA-256 pack checksums); use the mailarchive-toolkit that wrote it")
        )
    return label


def read_label(storage: Storage) -> bytes | None:
    try:
        return storage.read(LABEL_NAME)
    except ObjectMissingError:
        return None


def peek_label(data: bytes) -> dict | None:
    """The unauthenticated label body, for messages about foreign media."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def label_new_medium(storage: Storage, key: bytes, archive_uuid: uuidlib.UUID, medium_id: int) -> None:
    """Write the label of a new medium; refuse a location that already carries one."""
    existing = read_label(storage)
    if existing is not None:
        body = peek_label(existing) or {}
        if body.get("archive") == str(archive_uuid):
            raise MediumLabelError(
                f"{storage.location} already holds medium {body.get('medium')} of this archive; "
                f"choose an empty location"
            )
        raise ForeignArchiveError(
            f"{storage.location} already holds medium {body.get('medium', '?')} of another archive "
            f"({body.get('archive', 'unknown')}); choose an empty location"
        )
    try:
        storage.put(LABEL_NAME, make_label(key, archive_uuid, medium_id))
    except StorageError as exc:
        raise StorageError(f"cannot label {storage.location} as medium {medium_id}: {exc}") from None


#: what a fresh file system or a desktop leaves in a directory: a new medium may go where only these are
_CLUTTER = {"lost+found", ".ds_store", "system volume information", "$recycle.bin", ".trashes", ".spotlight-v100",
            ".fseventsd", "desktop.ini", "thumbs.db", ".directory"}


def is_clutter(name: str) -> bool:
    """Is the file ``name`` (relative, '/'-separated) what a file system or a desktop leaves in a directory?"""
    top = name.split("/", 1)[0]
    return top.lower() in _CLUTTER or top.startswith(".Trash-")


def strangers(names, own=frozenset()) -> Iterator[str]:
    """The names (relative, '/'-separated) of ``names`` that are neither ``own`` nor a file system's clutter: what
    keeps a place from taking a medium or a home (docs/reliability.md P11)."""
    return (n for n in names if n not in own and not is_clutter(n))


def refuse_not_empty(storage: Storage) -> None:
    """A new medium goes into an empty place: files there (another program's, a mirror of another archive, a tree
    of mail meant for import) would sit among the packs, be counted by verify as unknown, and go with the medium
    wherever it is moved or consolidated. A file system's own clutter (``lost+found``, ``.Trash-1000``, ...) is
    allowed. A place that carries a medium label is left to :func:`label_new_medium`, which names whose it is."""
    if read_label(storage) is not None:
        return
    try:
        name = next(strangers(e.name for e in storage.list("")), None)
    except StorageError:
        return  # a listing that fails: the label's own write says what is wrong with the place
    if name is not None:
        raise MediumError(f"{storage.location} is not empty (it holds {name}): a new medium goes into an "
                          "empty directory; choose another location, or empty this one first")
