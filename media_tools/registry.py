"""Media registry operations and their rules (docs/media.md, docs/reliability.md P1/P3).

IDs start at 1 and are handed out from a high-water mark, so they are never
renumbered or reused. Exactly one medium is active. A medium that holds
packs, or below which a higher ID holds packs, cannot be removed.
"""
from __future__ import annotations

from toolkit.archive import Archive
from toolkit.catalog import events, media_rows
from toolkit.config import MediumEntry
from toolkit.errors import MailArchiveError, MediumError, NextStep


def _log(archive: Archive, kind: str, detail: dict) -> None:
    with archive.catalog.writing() as con:
        events.log_event(con, kind, detail)


def pack_counts(archive: Archive) -> dict[int, tuple[int, int, int]]:
    """medium id → (packs, bytes, messages)."""
    with archive.catalog.reading() as con:
        return media_rows.pack_counts(con)


def list_media(archive: Archive, check: bool = True) -> list[dict]:
    counts = pack_counts(archive)
    out = []
    for m in sorted(archive.config.media, key=lambda m: m.id):
        packs, nbytes, messages = counts.get(m.id, (0, 0, 0))
        row = {
            "id": m.id,
            "location": m.location,
            "state": m.state,
            "alias_of": m.alias_of,
            "packs": packs,
            "bytes": nbytes,
            "messages": messages,
            "reachable": None,
            "problem": None,
        }
        if check and m.state != "removed":
            try:
                archive.storage(m.id)
                row["reachable"] = True
            except MailArchiveError as exc:
                row["reachable"] = False
                row["problem"] = str(exc)
        out.append(row)
    return out


def add(archive: Archive, location: str, activate: bool = False, smb_password: str | None = None) -> MediumEntry:
    entry = archive.add_medium(location, smb_password=smb_password, activate=activate)
    _log(archive, "medium-added", {"medium": entry.id, "location": entry.location, "active": activate})
    return entry


def _entry(archive: Archive, medium_id: int) -> MediumEntry:
    m = archive.config.medium(medium_id)
    if m is None:
        raise MediumError(f"there is no medium {medium_id}", next_step=NextStep.LIST_MEDIA)
    return m


def activate(archive: Archive, medium_id: int) -> MediumEntry:
    m = _entry(archive, medium_id)
    if m.state in ("removed", "retired"):
        raise MediumError(f"medium {medium_id} is {m.state} and cannot be activated; add a new medium instead")
    archive.storage(medium_id)  # reachable and correctly labelled, or a clear error
    previous = archive.config.active_medium
    for other in archive.config.media:
        if other.state == "active":
            other.state = "standby"
    m.state = "active"
    archive.save_config()
    archive.sync_media_table()
    _log(archive, "medium-activated", {"medium": medium_id, "previous": previous.id if previous else None})
    return m


def deactivate(archive: Archive, medium_id: int) -> MediumEntry:
    m = _entry(archive, medium_id)
    if m.state == "active":
        raise MediumError(
            f"medium {medium_id} is the active medium; exactly one medium must be active — "
            f"activate another one first", next_step=NextStep.ACTIVATE_ANOTHER_MEDIUM
        )
    if m.state != "standby":
        raise MediumError(f"medium {medium_id} is {m.state}; only a standby medium can be deactivated")
    m.state = "deactivated"
    archive.save_config()
    archive.sync_media_table()
    _log(archive, "medium-deactivated", {"medium": medium_id})
    return m


def remove(archive: Archive, medium_id: int) -> MediumEntry:
    m = _entry(archive, medium_id)
    if m.state == "removed":
        raise MediumError(f"medium {medium_id} was already removed")
    if m.state == "active":
        raise MediumError(f"medium {medium_id} is the active medium; activate another one before removing it")
    counts = pack_counts(archive)
    if counts.get(medium_id, (0,))[0]:
        raise MediumError(
            f"medium {medium_id} holds {counts[medium_id][0]} pack(s) with {counts[medium_id][2]} mail(s) and cannot be "
            f"removed; deactivate it, or consolidate it into another medium first"
        )
    higher = sorted(i for i, c in counts.items() if i > medium_id and c[0])
    if higher:
        raise MediumError(
            f"medium {medium_id} lies below medium {higher[0]}, which holds packs; media IDs are never renumbered, "
            f"so it cannot be removed — deactivate it instead"
        )
    m.state = "removed"
    archive.save_config()
    archive.sync_media_table()
    _log(archive, "medium-removed", {"medium": medium_id, "location": m.location})
    return m


#: Media whose files a housekeeping pass (adopt, temp-file collection) looks at: every one not removed.
IN_SERVICE_STATES = ("active", "standby", "deactivated")


def media_in_service(archive: Archive, medium_id: int | None, purpose: str) -> list[int]:
    """The ids of the media in service, or ``[medium_id]`` when one is named (a removed or unknown one is an
    error naming ``purpose``, e.g. "to clean")."""
    if medium_id is None:
        return sorted(m.id for m in archive.config.media if m.state in IN_SERVICE_STATES)
    m = archive.config.medium(medium_id)
    if m is None or m.state == "removed":
        raise MediumError(f"there is no medium {medium_id} {purpose}", next_step=NextStep.LIST_MEDIA)
    return [medium_id]
