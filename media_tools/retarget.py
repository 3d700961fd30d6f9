"""Pointing a medium at a new location whose files were copied by other means (docs/media.md).

The support path of the original product: a medium's files were copied to
another disk or share (rsync, robocopy, a restored backup), and the medium's
registry entry is to follow them. Refused unless the new location carries
THIS archive's label for THIS medium ID (MEDIUM.json with a valid HMAC, P4/P9)
and holds every pack the catalog keeps on the medium with its recorded size;
``verify=True`` also compares each pack's BLAKE3 checksum. Nothing changes on refusal.
"""
from __future__ import annotations


from toolkit.archive import Archive
from toolkit.errors import IntegrityError, MailArchiveError, MediumError, MediumLabelError, NextStep
from toolkit.medium import LABEL_NAME, check_label, read_label
from toolkit.reporter import NullReporter, Reporter
from toolkit.storage import Storage, open_storage, parse_location
from toolkit.catalog import events, media_rows

#: How many missing or differing packs a refusal names before it summarises.
NAMED = 10


class RetargetRefused(MediumError):
    """The location does not hold this medium's files; ``.problems`` lists each pack."""

    def __init__(self, message: str, problems: list[dict]):
        super().__init__(message)
        self.problems = problems



def check_location(
    archive: Archive, medium_id: int, storage: Storage, verify: bool = False, reporter: Reporter | None = None
) -> dict:
    """Check that ``storage`` holds medium ``medium_id`` of this archive; raise naming what is wrong."""
    reporter = reporter or NullReporter()
    data = read_label(storage)
    if data is None:
        raise MediumLabelError(
            f"{storage.location} has no {LABEL_NAME}: it does not hold a medium (copy the whole medium folder)"
        )
    check_label(data, archive.key, archive.uuid, medium_id, storage.location)
    with archive.catalog.reading() as con:
        packs = media_rows.packs_on_medium(con, medium_id)
    problems: list[dict] = []
    reporter.start("retarget-check", len(packs), "packs")
    for name, size, sha in packs:
        st = storage.stat(name)
        if st is None:
            problems.append({"pack": name, "problem": "missing"})
        elif st.size != size:
            problems.append({"pack": name, "problem": f"size {st.size}, the catalog expects {size}"})
        elif verify:
            got = storage.blake3(name)[0]
            if got != sha:
                problems.append({"pack": name, "problem": f"BLAKE3 {got[:16]}…, the catalog expects {sha[:16]}…"})
        reporter.advance("retarget-check", 1, bytes=size)
    reporter.finish("retarget-check")
    if problems:
        named = "\n  ".join(f"{p['pack']}: {p['problem']}" for p in problems[:NAMED])
        more = f"\n  … and {len(problems) - NAMED} more" if len(problems) > NAMED else ""
        cls = IntegrityError if verify and all(p["problem"].startswith("BLAKE3 ") for p in problems) else RetargetRefused
        msg = (
            f"{storage.location} does not hold all packs of medium {medium_id} "
            f"({len(problems)} of {len(packs)} missing or different):\n  {named}{more}\n"
            f"Copy the missing files there and rerun; the medium still points at its old location."
        )
        if cls is IntegrityError:
            raise IntegrityError(msg)
        raise RetargetRefused(msg, problems)
    return {"packs": len(packs), "bytes": sum(p[1] for p in packs), "verified": verify}


def retarget(
    archive: Archive,
    medium_id: int,
    location: str,
    *,
    smb_password: str | None = None,
    verify: bool = False,
    reporter: Reporter | None = None,
) -> dict:
    """Point medium ``medium_id`` at ``location`` after checking its label and packs (archive opened as writer)."""
    m = archive.config.medium(medium_id)
    if m is None:
        raise MediumError(f"there is no medium {medium_id}", next_step=NextStep.LIST_MEDIA)
    if m.state == "removed":
        raise MediumError(f"medium {medium_id} was removed; a removed medium cannot be retargeted")
    loc = parse_location(location)
    location = str(loc)
    other = next((o for o in archive.config.media if o.location == location and o.id != medium_id and o.state != "removed"), None)
    if other is not None:
        raise MediumError(f"{location} is registered as medium {other.id}; it cannot hold medium {medium_id} too")
    from toolkit.places import refuse_overlap  # the medium found elsewhere may not lie in or around another place

    refuse_overlap(archive, location, f"media retarget {medium_id}", around=True, skip=(f"medium {medium_id}",),
                   may_be_inside=("the archive home",))
    password = (smb_password or archive.smb_password) if loc.is_smb else None
    storage = open_storage(location, password)
    try:
        checked = check_location(archive, medium_id, storage, verify=verify, reporter=reporter)
    finally:
        storage.close()

    previous = m.location
    m.location = location
    m.secret = archive.seal_secret(f"smb:{location}", password) if (loc.is_smb and password is not None) else None
    archive.save_config()
    archive.sync_media_table()
    cached = archive._storages.pop(medium_id, None)  # the old location's storage must not be reused
    if cached is not None:
        try:
            cached.close()
        except MailArchiveError:
            pass
    detail = {"medium": medium_id, "from": previous, "to": location, **checked}
    with archive.catalog.writing() as con:
        events.log_event(con, "medium-retargeted", detail)
    return detail
