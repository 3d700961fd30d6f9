"""``media gc --temp``: remove the temporary files a killed writer left on the media (docs/reliability.md B3).

Every write to a medium goes to ``<final name>.<12 hex digits>.tmp`` first and is renamed onto its
final name only once complete (``toolkit/storage/base.py``). A writer killed in between leaves the
temporary file behind; readers ignore it and nothing counts it, but it takes space. This removes
exactly such files:

* only names of that pattern (``TEMP_NAME_RE``): never a sealed pack, a manifest, a label or a
  file of someone else that merely ends in ``.tmp``; a name the catalog lists as a pack is never
  touched either;
* only files older than ``older_than`` seconds. The age is judged by the medium's own clock: the
  modification time of the file against that of a probe file written just now on the same medium
  (as the shared lock does, ``toolkit/shared_lock.py``), so a share whose clock differs from this
  host's never makes a live write look old;
* the caller holds the writer lock (and on a share the shared lock, taken by the probe write), so
  no writer of this archive is writing meanwhile.

``dry_run`` lists what would go and removes nothing.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from toolkit.archive import Archive
from toolkit.catalog import media_rows
from toolkit.errors import MailArchiveError, ObjectMissingError, StorageError
from toolkit.shared_lock import PROBE_PREFIX
from toolkit.storage import Storage
from toolkit.storage.base import TMP_SUFFIX

from .registry import media_in_service

#: The temporary names of the storage writers (``toolkit/storage/local.py``, ``smb.py``).
TEMP_NAME_RE = re.compile(r"^(?P<final>.+)\.[0-9a-f]{12}" + re.escape(TMP_SUFFIX) + r"$")

#: The media looked at when none is named: the ones in service.


@dataclass
class TempCollection:
    older_than: float
    dry_run: bool
    media: list[int] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)        # removed (or, dry run, to remove)
    younger: int = 0                                       # temp files not old enough: kept
    unreachable: list[dict] = field(default_factory=list)  # media that could not be looked at

    def as_dict(self) -> dict:
        return {"older_than_seconds": self.older_than, "dry_run": self.dry_run, "media": self.media,
                "files": self.files, "removed": 0 if self.dry_run else len(self.files),
                "bytes": sum(f["bytes"] for f in self.files), "kept_younger": self.younger,
                "unreachable": self.unreachable}


def is_temp_name(name: str) -> bool:
    """Is ``name`` (a medium-relative path) a temporary name of the storage writers?"""
    return TEMP_NAME_RE.match(name.rsplit("/", 1)[-1]) is not None


def medium_now(storage: Storage) -> float:
    """The medium's clock now: the modification time of a probe file written just now (then removed)."""
    probe = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
    storage.put(probe, b"")
    try:
        entry = storage.stat(probe)
    finally:
        try:
            storage.delete(probe)
        except StorageError:
            pass
    if entry is None:
        raise StorageError(f"{storage.location}: the probe file {probe} vanished right after it was written")
    return entry.mtime


def _media(archive: Archive, medium_id: int | None) -> list[int]:
    return media_in_service(archive, medium_id, "to clean")


def collect_temp_files(archive: Archive, older_than: float, *, medium_id: int | None = None,
                       dry_run: bool = False) -> TempCollection:
    """Remove (``dry_run``: list) the temporary files older than ``older_than`` seconds on the media in
    service, or on medium ``medium_id``; ``archive`` is open as writer."""
    if archive.lock is None:
        raise RuntimeError("removing temporary files needs the archive opened as writer")
    if older_than < 0:
        raise ValueError("older_than must not be negative")
    result = TempCollection(older_than=older_than, dry_run=dry_run)
    with archive.catalog.reading() as con:
        packs = {mid: {name for name, *_ in media_rows.packs_on_medium(con, mid)}
                 for mid in _media(archive, medium_id)}
    for mid, known in packs.items():
        try:
            _collect_on(archive.storage(mid), mid, known, result)
        except MailArchiveError as exc:
            if medium_id is not None:
                raise
            result.unreachable.append({"medium": mid, "problem": str(exc)})
            continue
        result.media.append(mid)
    return result


def _collect_on(storage: Storage, mid: int, known_packs: set[str], result: TempCollection) -> None:
    now = medium_now(storage)
    for e in storage.list("", include_temp=True):
        if not is_temp_name(e.name) or e.name in known_packs:
            continue
        age = now - e.mtime
        if age < result.older_than:
            result.younger += 1
            continue
        if not result.dry_run:
            try:
                storage.delete(e.name)
            except ObjectMissingError:
                continue  # gone meanwhile
        result.files.append({"medium": mid, "name": e.name, "bytes": e.size, "age_seconds": round(age)})
