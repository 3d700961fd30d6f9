"""``media move ID LOCATION``: copy a medium's files to a new location with verification, then switch.

Brings a medium back where users expect it, e.g. after ``restore``, whose
media are the mirror's folders, onto local disk or another share.

Steps:

1. Every file of the medium (label, packs, stamp manifests, catalog backups,
   config snapshots; temporary files left out) is copied create-only to the
   same relative name below LOCATION, and the copy is read back and its
   BLAKE3 checksum compared with the source's — and with the catalog's for a pack.
2. A file already at LOCATION with the source's size and BLAKE3 checksum counts as
   copied (an interrupted move resumes: rerun the same command); a file there
   with other content stops the move, naming it, before anything switches. A
   file there that is no file of the medium (a file system's ``lost+found``
   aside) refuses the move before anything is copied (docs/reliability.md P11).
3. The switch is ``retarget`` (label and every pack checked at LOCATION), which
   records a ``medium-retargeted`` event. The medium keeps its ID and state.

The old location is never written to or deleted from: remove it by hand
once the archive works from the new one.
"""
from __future__ import annotations

import os

from toolkit.archive import Archive
from toolkit.errors import IntegrityError, MediumError, ObjectExistsError, NextStep
from toolkit.reporter import NullReporter, Reporter
from toolkit.storage import Storage, open_storage, parse_location
from toolkit.catalog import media_rows

from .retarget import retarget

COPY_CHUNK = 8 * 1024 * 1024


def _copy_verified(src: Storage, dst: Storage, name: str, size: int, catalog_sha: str | None) -> bool:
    """Copy ``name`` unless a good copy is there; True when bytes were copied. Raises on any mismatch."""
    want, n = src.blake3(name)
    if catalog_sha is not None and want != catalog_sha:
        raise IntegrityError(f"{src.location}/{name} does not match its checksum (BLAKE3) in the catalog; nothing was switched "
                             f"(restore that pack from the mirror first)")
    copied = False
    if dst.stat(name) is None:
        dst.copy_in(name, src, name, COPY_CHUNK)
        copied = True
    got, m = dst.blake3(name)
    if (got, m) != (want, n):
        if copied:
            try:
                dst.delete(name)
            except Exception:
                pass
            raise IntegrityError(f"the copy of {name} at {dst.location} reads back differently from the source: "
                                 f"the new location is unreliable; nothing was switched")
        raise ObjectExistsError(f"{dst.location}/{name} already exists with other content; move it aside and rerun")
    return copied


def move_medium(
    archive: Archive,
    medium_id: int,
    location: str,
    *,
    smb_password: str | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Copy medium ``medium_id`` to ``location`` with verification, then point the medium there (writer archive)."""
    reporter = reporter or NullReporter()
    m = archive.config.medium(medium_id)
    if m is None:
        raise MediumError(f"there is no medium {medium_id}", next_step=NextStep.LIST_MEDIA)
    loc = parse_location(location)
    if str(loc) == m.location:
        raise MediumError(f"medium {medium_id} is already at {loc}")
    from toolkit.places import refuse_overlap  # inside its old place too: removing that would remove the new one

    refuse_overlap(archive, str(loc), f"media move {medium_id}", around=True, may_be_inside=("the archive home",))
    src = archive.storage(medium_id)
    with archive.catalog.reading() as con:
        pack_sha = {name: sha for name, _size, sha in media_rows.packs_on_medium(con, medium_id)}
    files = list(src.list(""))
    password = smb_password if loc.is_smb else None
    dst = open_storage(str(loc), password)
    copied = reused = nbytes = 0
    try:
        _refuse_others(dst, {e.name for e in files}, medium_id)
        reporter.start("move", sum(e.size for e in files), "bytes")
        for e in files:
            if _copy_verified(src, dst, e.name, e.size, pack_sha.get(e.name)):
                copied += 1
                nbytes += e.size
            else:
                reused += 1
            reporter.advance("move", e.size)
        reporter.finish("move")
    finally:
        dst.close()
    switched = retarget(archive, medium_id, str(loc), smb_password=password, verify=False, reporter=reporter)
    return {"medium": medium_id, "from": switched["from"], "to": switched["to"], "files": len(files),
            "copied": copied, "already_there": reused, "bytes_copied": nbytes, "packs": switched["packs"]}


def _refuse_others(dst: Storage, own: set[str], medium_id: int) -> None:
    """LOCATION may hold this medium's own files (an interrupted move: step 2 checks each) and a file system's clutter,
    nothing else: another program's files would sit among the packs and go wherever the medium goes next
    (docs/reliability.md P11, as for a new medium)."""
    from toolkit.medium import strangers

    name = next(strangers((e.name for e in dst.list("")), own), None)
    if name is not None:
        raise MediumError(f"{dst.location} holds {name}, which is no file of medium {medium_id}: a medium moves "
                          "into an empty directory (or one holding an interrupted move of it); choose another "
                          "location, or empty this one first")


def media_dir(root: str, medium_id: int) -> str:
    """Where ``restore --media-to ROOT`` puts medium ``medium_id``."""
    return os.path.join(root, f"medium-{medium_id}") if "://" not in root else f"{root.rstrip('/')}/medium-{medium_id}"
