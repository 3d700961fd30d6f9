"""Where an archive home lives, and whether a home is a copy of another (docs/formats.md "The home",
docs/reliability.md O11).

A copy of a home (``cp -a``, rsync, a restored file backup) keeps the absolute medium locations and the mirror
of ``archive.toml``: a writing command on the copy would write into, or delete from, the original's media
behind the original's catalog. So the home records where it lives (``home-place.json``: the archive uuid and
the home's real path), ``init`` first and then every writer that finds the record missing or stale, and a
copy carries the original's record. A home without a record (made before homes recorded their place), or
whose recorded place holds no home of its archive, is also a copy when one of its local media lies inside
another home of its archive (``init`` puts medium 1 inside the home: ``cp -a`` of such a home leaves the copy
pointing into the original). When a writer opens a home whose record names another place:

* that place holds no home of this archive (a moved home; an original deleted for good): the new place is
  recorded, and the open goes on with a note;
* it holds one, and the copy shares none of its places (every medium and the mirror were pointed at copies
  of them: ``media move``, ``media retarget``, ``config set mirror.dest``, or by hand as bench helpers do):
  the copy is an archive of its own; its place is recorded, with a note;
* it holds one and they share a medium or the mirror: a :class:`~toolkit.errors.HomeCopyError` naming both
  homes and the shared places, before anything is written. Only the commands that point places elsewhere
  (``repointing``) open such a copy, and they record nothing.

Readers never write the record: on a copy that shares places they get a note, and read on (reading the
original's media is harmless). Of all homes that carry one record, only the one at the recorded place opens
as a writer while it is there.

Why the home and not the media: the record is one small local file, read and written under the writer lock
with no medium contacted (an open stays as fast, and works with every medium unreachable); medium labels
are written once and authenticated, and a claim written onto each medium would cost a write per medium and
open (on SMB too) and still could not tell a moved home from a copy without looking at the old place. What
the record cannot see: a copy taken to another machine at the same path, and two copies of a home whose
original is gone (the first writer of each takes it as moved); the shared lock on SMB media still keeps
their writers apart in time, but not their catalogs in step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import ArchiveConfig
from .errors import CatalogError, HomeCopyError, NextStep, UsageError
from .home import Home
from .places import archive_places, inside


def _original_config(original: Home, archive_uuid: str) -> ArchiveConfig | None:
    """The configuration of the home at the recorded place if it is a home of this archive, else None
    (nothing there, another archive, or a place this process cannot look at: taken as moved)."""
    try:
        if not original.has_config():
            return None
        config = original.load_config()
    except (OSError, CatalogError):
        return None
    return config if config.uuid == archive_uuid else None


def shared_places(copy: Home, config: ArchiveConfig, original: Home, original_config: ArchiveConfig) -> list[str]:
    """The copy's places (media not removed, the configured mirror) that are, lie in, or hold one of the
    original's places (its home, media and mirror), each as "medium 1 (/where)"."""
    theirs = archive_places(original.path, original_config)
    shared = []
    for what, where in archive_places(copy.path, config):
        if what == "the archive home":
            continue
        if any(inside(where, other) or inside(other, where) for _, other in theirs):
            shared.append(f"{what} ({where})")
    return shared


@dataclass(frozen=True)
class Place:
    """What a home's record says about where it is. ``kind``: "here" (the recorded place, or the same directory
    under another name), "unrecorded" (no readable record of this archive: an older home, a restored one),
    "moved" (the recorded place holds no home of this archive), "own-copy" (a copy sharing none of the
    original's places), "copy" (a copy sharing ``shared`` with the original at ``there``)."""

    kind: str
    here: str
    there: str = ""
    shared: tuple[str, ...] = ()


def find_place(home: Home, config: ArchiveConfig) -> Place:
    """Where ``home`` is against its record; reads the record and the recorded place's config, writes nothing."""
    here = home.real_path()
    recorded = home.read_place()
    if recorded is not None and recorded[0] == config.uuid:
        there = recorded[1]
        if there == here or _same_directory(there, here):
            return Place("here", here)
        original = Home(there)
        original_config = _original_config(original, config.uuid)
        kind = "moved"
    else:
        there, original_config, kind = "", None, "unrecorded"
    if original_config is None:  # no original at the recorded place: is a medium inside another home of it?
        found = _home_around_media(config, here)
        if found is None:
            return Place(kind, here, there)
        original, original_config = found
        there = str(original.path)
    try:
        shared = shared_places(home, config, original, original_config)
    except UsageError as exc:  # a location that does not parse: cannot tell what is shared
        shared = [f"a place that cannot be compared ({exc})"]
    return Place("copy" if shared else "own-copy", here, there, tuple(shared))


def refuse_copy(place: Place, archive_uuid: str) -> None:
    """HomeCopyError naming both homes, the shared places and the next step, for a copy that shares places."""
    if place.kind != "copy":
        return
    what = ", ".join(place.shared)
    are, them = ("is", "it") if len(place.shared) == 1 else ("are", "them")
    raise HomeCopyError(
        f"{place.here} is a copy of the archive home {place.there} (archive {archive_uuid}, still there): its "
        f"{what} {are} the original's. A writing command here would write into {them}, or delete from {them}, "
        f"behind the original's catalog; nothing was done",
        next_step=NextStep.REPOINT_COPY, hint_args={"copy": place.here, "original": place.there},
    )


def refuse_copy_unlocked(home: Home, repointing: bool = False) -> None:
    """Before a writer takes the lock: refuse a copy that shares places without touching its home (not even
    its lock file). A config that does not load is left to the open, which says what is wrong with it."""
    if repointing:
        return
    try:
        config = home.load_config()
    except CatalogError:
        return
    refuse_copy(find_place(home, config), config.uuid)


def check_place(home: Home, config: ArchiveConfig, *, writer: bool, repointing: bool = False) -> str | None:
    """Check (and for a writer, record) where ``home`` lives; a note for the operator, or None.

    Raises HomeCopyError for a writer on a copy that shares the original's places, unless ``repointing``
    (a command that points places elsewhere and writes nothing into the shared ones). A reader never writes.
    """
    place = find_place(home, config)
    if writer and not repointing:
        refuse_copy(place, config.uuid)
    if writer and place.kind in ("unrecorded", "moved", "own-copy"):
        home.write_place(config.uuid)
    if place.kind == "moved" and writer:
        return (f"the archive home moved from {place.there} to {place.here} ({place.there} holds no home of "
                f"this archive now); recorded the new place")
    if place.kind == "own-copy" and writer:
        return (f"{place.here} is a copy of the archive home {place.there} with media and mirror of its own: "
                f"recorded as a home of its own")
    if place.kind == "copy":
        are, they = ("is", "it points") if len(place.shared) == 1 else ("are", "they point")
        return (f"{place.here} is a copy of the archive home {place.there}: its {', '.join(place.shared)} {are} "
                f"the original's; commands that write are refused here until {they} elsewhere")
    return None


def _home_around_media(config: ArchiveConfig, here: str) -> tuple[Home, ArchiveConfig] | None:
    """Another home of this archive that holds one of its local media (``init`` puts medium 1 inside the home):
    the original of a copy made before homes recorded their place, or whose record is gone."""
    for m in config.media:
        if m.state == "removed" or "://" in m.location:
            continue
        path = os.path.dirname(os.path.realpath(m.location))
        while True:
            if path != here and not _same_directory(path, here):
                found = _original_config(Home(path), config.uuid)
                if found is not None:
                    return Home(path), found
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return None


def _same_directory(a: str, b: str) -> bool:
    """``a`` and ``b`` are one directory under two names (a bind mount)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
