"""The archive's own places (its home, its media, its mirror) and whether another place overlaps one.

An export, a mirror or a new medium that lies inside one of them, or (for a mirror or a medium) around one,
is refused before anything is written (docs/media.md, "Places that must not overlap"):

* plaintext mail exported into a medium or the home would sit beside the sealed packs and travel with every
  mirror and copy of them;
* a mirror inside a medium or the home, or around one, is no second copy: whatever loses the one loses the
  other; the same for a medium inside or around another medium, the home or the mirror.

Local places are compared by their real paths (symlinks resolved, so a link into a medium does not slip
through); ``smb://`` places by host, port, share and path, case-insensitively as SMB names are. A local
place and an SMB place are never taken for the same (the share may be mounted: that is not seen).
"""
from __future__ import annotations

import os

from .errors import UsageError
from .storage.location import Location, parse_location


def _key(loc: Location) -> tuple:
    if loc.is_smb:
        parts = tuple(p.lower() for p in loc.path.split("/") if p)
        return ("smb", loc.host.lower(), loc.port, loc.share.lower()), parts
    return ("local",), tuple(p for p in os.path.realpath(loc.path).split(os.sep) if p)


def inside(inner: Location, outer: Location) -> bool:
    """``inner`` is ``outer`` or lies below it."""
    (a, pa), (b, pb) = _key(inner), _key(outer)
    return a == b and pa[:len(pb)] == pb


def place_holding(home, config, location: Location) -> tuple[str, Location] | None:
    """(what, where) of the archive's place (home, a medium, the mirror) that ``location`` is or lies inside, else
    None."""
    return next(((what, where) for what, where in archive_places(home, config) if inside(location, where)), None)


def archive_places(home, config) -> list[tuple[str, Location]]:
    """(what, where) for the home, every medium not removed, and the configured mirror: all from the home's
    path and its configuration (archive.toml), no catalog needed."""
    places = [("the archive home", parse_location(str(home)))]
    places += [(f"medium {m.id}", parse_location(m.location)) for m in config.media if m.state != "removed"]
    dest = (config.settings.get("mirror") or {}).get("dest")
    if dest:
        try:
            places.append(("the configured mirror", parse_location(dest)))
        except UsageError:  # a mirror.dest set before it was checked: the mirror command names it
            pass
    return places


def refuse_overlap(archive, place: str | os.PathLike, doing: str, *, around: bool, skip: tuple[str, ...] = (),
                   may_be_inside: tuple[str, ...] = ()) -> None:
    """:func:`refuse_overlap_of` the archive's home and configuration."""
    refuse_overlap_of(archive.home, archive.config, place, doing, around=around, skip=skip,
                      may_be_inside=may_be_inside)


def refuse_overlap_of(home, config, place: str | os.PathLike, doing: str, *, around: bool,
                      skip: tuple[str, ...] = (), may_be_inside: tuple[str, ...] = ()) -> None:
    """A UsageError when ``place`` is, or lies inside, one of the archive's places (and with ``around``, when
    one of them lies inside ``place``). ``skip``: places not compared at all (the configured mirror, for a
    mirror); ``may_be_inside``: places ``place`` may lie inside (the home, for a medium: ``init`` puts the
    first medium there)."""
    loc = parse_location(os.fspath(place))
    for what, where in archive_places(home, config):
        if what in skip:
            continue
        if what not in may_be_inside and inside(loc, where):
            raise UsageError(f"{doing}: {place} is inside {what} ({where}); choose a place apart from the "
                             "archive's home, media and mirror")
        if around and inside(where, loc):
            raise UsageError(f"{doing}: {place} holds {what} ({where}); choose a place apart from the archive's "
                             "home, media and mirror")
