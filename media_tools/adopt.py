"""``db adopt``: take valid packs the catalog does not know into the catalog (docs/reliability.md P7).

A pack on a medium without a catalog row is left by an import killed between the pack's rename and
its commit, by a catalog that lost its last runs (a deleted WAL, an older copy put back), or by a
consolidation that stopped half way. Quick verify lists such packs under Q03, never deletes them.
:func:`adopt_packs` adds them without a whole ``db rebuild --force``:

* every pack file on the live media (or on one medium) whose pack id the catalog lacks is read with
  the archive key as ``db rebuild`` reads it (media_tools/pack_rows.py): footer index, checksum,
  and **every** record decrypted and authenticated. A pack of which anything fails (a damaged or
  forged file, a pack of another archive) is refused and left where it is, never deleted;
* dedup holds (docs/dedup.md): a record whose blob id the catalog (or a pack adopted before it in
  this run) holds is an exact duplicate, one whose dedup key it holds a duplicate; neither becomes a
  second message. A record whose mail was purged by approval (a tombstone, docs/retention.md: the
  old pack of a purge killed before it removed that pack) is never brought back. The others become messages with new msg_ids after the highest, their rows derived
  as ``db rebuild`` derives them (no run, no sightings: those came from the sources). A Message-ID
  shared with another message flags both (``id_conflict``), as the import does;
* each pack is one transaction: its ``packs``, ``messages`` and ``recipients`` rows and a
  ``pack-adopted`` event; then its high-water mark goes on the medium (toolkit/marks.py), as after
  an import's commit;
* a pack none of whose records is new is reported as "nothing new" and left on the medium, without
  a row (removing it is not adoption's job); so is a pack the catalog places on another medium;
* the caller holds the writer lock, so no import's pack that is about to be committed is taken.

``dry_run`` reads and decides the same, and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from toolkit import marks
from toolkit.archive import Archive
from toolkit.catalog import events, ingest_rows, purge_rows, rebuild_rows
from toolkit.errors import MailArchiveError
from toolkit.pack import pack_id_from_name

from . import pack_rows
from .registry import media_in_service

#: The media looked at when none is named: those quick verify lists (Q03).
EVENT_KIND = "pack-adopted"


@dataclass
class AdoptResult:
    dry_run: bool
    media: list[int] = field(default_factory=list)
    adopted: list[dict] = field(default_factory=list)      # packs with new messages (dry run: that would be)
    nothing_new: list[dict] = field(default_factory=list)  # unknown packs all of whose records are archived
    refused: list[dict] = field(default_factory=list)      # packs that did not read or authenticate: left alone
    unreachable: list[dict] = field(default_factory=list)  # media that could not be listed

    @property
    def problems(self) -> bool:
        return bool(self.refused or self.unreachable)

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "media": self.media, "adopted": self.adopted,
                "messages": sum(p["messages"] for p in self.adopted), "nothing_new": self.nothing_new,
                "refused": self.refused, "unreachable": self.unreachable}


@dataclass
class _Seen:
    """Blob ids and dedup keys of the packs adopted in this run (a dry run commits none of them)."""

    blobs: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def _media(archive: Archive, medium_id: int | None) -> list[int]:
    return media_in_service(archive, medium_id, "to adopt packs from")


def adopt_packs(archive: Archive, *, medium_id: int | None = None, dry_run: bool = False) -> AdoptResult:
    """Adopt (``dry_run``: list) the unknown packs of the live media, or of medium ``medium_id``;
    ``archive`` is open as writer."""
    if archive.lock is None:
        raise RuntimeError("adopting packs needs the archive opened as writer")
    result = AdoptResult(dry_run=dry_run)
    with archive.catalog.reading() as con:
        known = rebuild_rows.pack_media(con)
    seen = _Seen()
    for mid in _media(archive, medium_id):
        try:
            storage = archive.storage(mid)
            entries = [e for e in storage.list("packs") if e.name.endswith(".pack")]
        except MailArchiveError as exc:
            if medium_id is not None:
                raise
            result.unreachable.append({"medium": mid, "problem": str(exc)})
            continue
        result.media.append(mid)
        for e in sorted(entries, key=lambda e: (e.mtime, e.name)):
            _one_pack(archive, storage, mid, e, known, seen, result)
    return result


def _one_pack(archive, storage, mid: int, entry, known: dict, seen: _Seen, result: AdoptResult) -> None:
    where = {"medium": mid, "name": entry.name}
    try:
        pack_id = pack_id_from_name(entry.name).hex()
    except MailArchiveError as exc:
        result.refused.append({**where, "pack": None, "problems": [str(exc)]})
        return
    if pack_id in known:
        if known[pack_id] != mid:
            result.nothing_new.append({**where, "pack": pack_id, "records": None,
                                       "reason": f"the catalog places this pack on medium {known[pack_id]}"})
        return
    got = pack_rows.read_pack(archive, storage, mid, entry, pack_id)
    if got.problems:
        result.refused.append({**where, "pack": pack_id, "problems": [p["problem"] for p in got.problems]})
        return
    new, counts, conflicts = _decide(archive, got.records, seen)
    info = {**where, "pack": pack_id, "records": got.count, **counts}
    if not new:
        result.nothing_new.append({**info, "reason": "every record is archived already or was purged by approval"
                                   if counts["purged"] else "every record is archived already"})
        return
    for r in new:
        seen.blobs.add(r.blob_id)
        seen.keys.add(r.dedup_key)
    info.update(messages=len(new), id_conflicts=conflicts, msg_ids=None)
    if not result.dry_run:
        info["msg_ids"] = _commit(archive, storage, got.pack, new, info)
        known[pack_id] = mid
    result.adopted.append(info)


def _decide(archive, records: list[pack_rows.Record], seen: _Seen) -> tuple[list, dict, int]:
    """(new records, {exact_duplicates, duplicates, purged: counts}, new records sharing a known Message-ID)
    (docs/dedup.md; a purged mail stays purged, docs/retention.md)."""
    counts = {"exact_duplicates": 0, "duplicates": 0, "purged": 0}
    if not records:
        return [], counts, 0
    blobs, keys, mids = ingest_rows.lookup_keys(
        archive.catalog, [r.blob_id for r in records], [r.dedup_key for r in records],
        [r.row["message_id"] for r in records])
    with archive.catalog.reading() as con:
        purged = purge_rows.tombstoned_blobs(con, [r.blob_id for r in records])
    new = []
    for r in records:
        if r.blob_id in blobs or r.blob_id in seen.blobs:
            counts["exact_duplicates"] += 1
        elif r.blob_id in purged:
            counts["purged"] += 1
        elif r.dedup_key in keys or r.dedup_key in seen.keys:
            counts["duplicates"] += 1
        else:
            new.append(r)
    conflicts = sum(1 for r in new if r.row["message_id"] in mids)
    return new, counts, conflicts


def _commit(archive, storage, pack: dict, new: list[pack_rows.Record], info: dict) -> list[int]:
    """One pack's rows and its event in one transaction, then its high-water mark; returns [first, last] msg_id."""
    with archive.catalog.writing() as con:
        first = ingest_rows.next_msg_id(con)
        messages, recipients = pack_rows.number_rows(new, first)
        pack_rows.append_pack(con, pack, messages, recipients)
        ingest_rows.flag_shared_message_ids(con, [m["msg_id"] for m in messages])
        span = [first, first + len(messages) - 1]
        events.log_event(con, EVENT_KIND, {
            "pack": pack["pack_id"], "medium": pack["medium_id"], "name": pack["name"], "records": pack["records"],
            "messages": len(messages), "msg_ids": span, "exact_duplicates": info["exact_duplicates"],
            "duplicates": info["duplicates"], "purged": info["purged"]})
    marks.mark_pack(storage, archive.uuid, pack["pack_id"], span[1])
    return span
