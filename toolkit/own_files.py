"""The archive's own files are never imported (docs/reliability.md N9).

An import pointed at a directory that holds the archive's home, a medium or the mirror (``import eml /srv``
where ``/srv/mailarchive`` is the home) walks into them. Their files are no mail: without ``--force-raw`` they
were listed as "not mail" one by one; with it, the raw archive key, the catalog and the sealed packs were archived
as mails, and the key could then leave in any export. So:

* a source that lies inside one of the archive's places (:func:`toolkit.places.archive_places`) is refused before
  the run starts (:func:`refuse_inside`);
* a source that holds one of them is read without them: the local walk lists each such place as one skipped entry
  that names it (importers/walk.py ``without_own``, with the places :func:`places_below` gives), whatever
  ``--force-raw`` says.

Local places only, compared by real paths as :mod:`toolkit.places` compares them: an SMB source and an SMB
medium on one share are not seen here. A local walk also tells homes and media by their files, whatever archive and
path (``importers.walk._marked``: an SMB medium mounted locally, another archive's home).
"""
from __future__ import annotations

import os

from .errors import UsageError
from .places import archive_places, inside, place_holding
from .storage.location import Location


def _local(location) -> Location | None:
    return location if isinstance(location, Location) and not location.is_smb else None


def refuse_inside(home, config, location, doing: str) -> None:
    """A UsageError when the source ``location`` is, or lies inside, the archive's home, a medium or the mirror."""
    loc = _local(location)
    held = place_holding(home, config, loc) if loc is not None else None
    if held is not None:
        what, where = held
        raise UsageError(f"{doing}: {loc.path} is inside {what} ({where.path}): the archive's own files are never "
                         "imported; name the mail to import instead")


def places_below(home, config, location) -> list[tuple[str, str]]:
    """(what, real path) of the archive's local places that lie below the source ``location`` (none: nothing to
    skip, and the items are not looked at)."""
    loc = _local(location)
    if loc is None:
        return []
    return [(what, os.path.realpath(where.path)) for what, where in archive_places(home, config)
            if not where.is_smb and inside(where, loc) and not inside(loc, where)]


def keep_out(home, config, importer, doing: str) -> None:
    """Before an importer's scan: refuse it when its source lies inside one of the archive's places
    (:func:`refuse_inside`), and hand a local walker the places that lie below its source (its ``own_places``)."""
    location = getattr(importer, "location", None)
    refuse_inside(home, config, location, doing)
    places = places_below(home, config, location)
    if places and hasattr(importer, "own_places"):
        importer.own_places = tuple(places)
