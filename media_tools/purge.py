"""``purge``: remove the mails of approved deletion requests from the media (docs/retention.md "Purge and tombstones").

For every approved request not purged yet, and for every pack that holds one of its mails that
:func:`toolkit.purge_rules.deletable_now` still allows:

1. **Write** a new pack without those records, create-only, under a pack id derived from the old
   pack id and the removed blob ids (so a rerun finds the same name): every other record is read,
   authenticated, and sealed again under the new pack's key. A pack whose records all go gets none.
2. **Check** the new pack: read back, every record authenticates, its blob ids are exactly the ones
   kept, and its BLAKE3 is the one computed while writing. A file of that name left by a killed run
   is reused when it passes this check; one that does not stops the purge (nothing switched).
3. **Record** the purge of the pack on the medium (:mod:`media_tools.deletion_records`, sealed,
   create-only), before the catalog knows it, so that ``db rebuild`` gets the tombstones back; a rerun
   uses the record a killed run left, its purge time included.
4. **Switch** in one catalog transaction: the new pack's row, the kept mails' place in it, a
   tombstone per removed mail and its rows removed, the old pack's row removed, an event
   ``purge-pack-switched`` (old and new pack). Then the new pack's high-water mark is written.
5. **Remove** the old pack file and its high-water mark (only after 2 to 4).

When every pack of a request is switched and removed, a done record goes to the medium, then one
transaction sets the request ``purged``
(with ``purged_at``) and logs ``deletion-purged``. A kill at any point leaves either the old state
(plus at most a finished new pack file, reused by the rerun) or the switched one (the rerun removes
the old file from the events of step 4): rerunning ``purge`` completes the work.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field

import duckdb

from toolkit import faults, marks
from toolkit.archive import Archive
from toolkit.catalog import purge_rows, retention as retention_rows
from toolkit.errors import CatalogMemoryLimitError, IntegrityError, MailArchiveError, ObjectExistsError
from toolkit.pack import IndexEntry, PackReader, PackWriter, pack_name
from toolkit.purge_rules import deletable_of_request, query_held
from toolkit.reporter import NullReporter, Reporter

from . import deletion_records

PACK_ID_CONTEXT = b"mailarchive purge pack id\x00"
#: The purge's catalog session checkpoints after each 4 MiB of WAL (DuckDB's default: 16 MiB): each pack switch
#: updates the kept mails' places and deletes the purged ones, and a checkpoint of 13 MB of that WAL (250,000 of a
#: million mails) needed 72-80 MiB, beyond the session's 64 MiB (``retention_rows.MEMORY_LIMIT``); at 4 MiB each
#: fits it (docs/reliability.md A12, bench/RESULTS.md branch purgewal).
CHECKPOINT_THRESHOLD = 4 << 20
NEW_PACK_STATES = ("active", "standby")


@dataclass
class _Pack:
    pack_id: str
    medium_id: int
    name: str
    bytes: int
    records: int
    blake3: str


@dataclass
class RequestOutcome:
    request_id: int
    items: int
    purged: list[int] = field(default_factory=list)       # msg_ids tombstoned by this run
    kept: list[int] = field(default_factory=list)         # not deletable now (held, not expired)
    packs_rewritten: list[str] = field(default_factory=list)
    packs_removed: list[str] = field(default_factory=list)
    bytes_before: int = 0
    status: str = "approved"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_pack_id(old_pack_id: str, removed_blobs: list[str]) -> bytes:
    """The id of the pack that replaces ``old_pack_id`` without ``removed_blobs`` (the same on every rerun)."""
    h = hashlib.sha256(PACK_ID_CONTEXT + bytes.fromhex(old_pack_id))
    for b in sorted(removed_blobs):
        h.update(bytes.fromhex(b))
    return h.digest()[:16]


def _memory_reported(work):
    """A read of the purge beyond its DuckDB memory limit (``retention_rows.MEMORY_LIMIT``) becomes the operator's
    error, never a traceback (a commit beyond it already is one: toolkit/catalog/connection.py)."""
    @functools.wraps(work)
    def run(*args, **kwargs):
        try:
            return work(*args, **kwargs)
        except duckdb.OutOfMemoryException as exc:
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "out of memory")
            raise CatalogMemoryLimitError(
                f"the purge's work in the catalog needed more memory than this command gives DuckDB ({reason}); "
                "what was switched stays switched: rerun the command to complete it; if it stops here again, report it "
                "(docs/retention.md \"At scale\")") from None
    return run


@_memory_reported
def plan_purge(archive: Archive, now: dt.datetime | None = None) -> list[dict]:
    """Per approved request: its mails, those deletable now, the packs to rewrite (nothing is written)."""
    now = now or _utcnow()
    out = []
    archive.catalog.use_memory_limit(retention_rows.MEMORY_LIMIT)
    held = query_held(archive.catalog)
    with archive.catalog.reading() as con:
        for rid, reason, decided_by in purge_rows.approved_requests(con):
            live = purge_rows.live_items(con, rid)
            ok_ids = deletable_of_request(con, rid, now, held)
            packs = purge_rows.packs_holding(con, ok_ids)
            ok = ok_ids.to_pylist()
            out.append({"request_id": rid, "reason": reason, "approved_by": decided_by,
                        "items": purge_rows.item_count(con, rid), "to_purge": ok,
                        "not_deletable": sorted(set(live) - set(ok)),
                        "packs": [p[2] for p in packs], "pack_bytes": sum(p[3] for p in packs)})
    return out


@_memory_reported
def purge_approved(archive: Archive, *, actor: str, now: dt.datetime | None = None,
                   reporter: Reporter | None = None) -> list[RequestOutcome]:
    """Purge every approved request (see the module doc); ``archive`` opened as writer."""
    reporter = reporter or NullReporter()
    archive.catalog.use_memory_limit(retention_rows.MEMORY_LIMIT)
    with archive.catalog.reading() as con:
        requests = [r[0] for r in purge_rows.approved_requests(con)]
    held = query_held(archive.catalog)  # the query holds, run once for every request
    return [_purge_request(archive, rid, actor, now or _utcnow(), reporter, held) for rid in requests]


def _purge_request(archive: Archive, rid: int, actor: str, now: dt.datetime, reporter: Reporter,
                   held: dict[int, set[int]]) -> RequestOutcome:
    with archive.catalog.reading() as con:
        live = purge_rows.live_items(con, rid)
        ok_ids = deletable_of_request(con, rid, now, held)
        packs = [_Pack(*p) for p in purge_rows.packs_holding(con, ok_ids)]
        ok = set(ok_ids.to_pylist())
        outcome = RequestOutcome(rid, purge_rows.item_count(con, rid), kept=sorted(set(live) - ok))
    reporter.start("purge", len(packs), "packs")
    # one read-write attach for every pack of the request, each pack's switch still its own committed transaction:
    # an attach and detach per pack checkpointed the catalog 200 times for a million mails (a third of the purge)
    with archive.catalog.transactions(checkpoint_threshold=CHECKPOINT_THRESHOLD) as transaction:
        for p in packs:
            outcome.bytes_before += p.bytes
            new = _rewrite_pack(archive, p, ok, rid, now, actor, transaction)
            outcome.purged += new["purged"]
            if new["new_pack"]:
                outcome.packs_rewritten.append(new["new_pack"])
            reporter.advance("purge", 1)
    reporter.finish("purge")
    with archive.catalog.reading() as con:
        switched = purge_rows.switched_packs(con, rid)
    for d in switched:
        if _remove_old(archive, d):
            outcome.packs_removed.append(d["old_name"])
    if outcome.kept:
        reporter.warn(f"deletion request {rid}: {len(outcome.kept)} mail(s) may not be deleted now "
                      "(legal hold or retention); the request stays approved")
        return outcome
    faults.hit("purge_before_done")
    with archive.catalog.reading() as con:
        waiting = purge_rows.request_status(con, rid) == "approved"
    purged_at = _utcnow()
    if waiting:  # the medium says the request is purged before the catalog does (deletion_records)
        done = deletion_records.put_record(
            archive, archive.storage(archive.active_medium_id()), deletion_records.done_record_name(rid),
            {"kind": "request-purged", "request_id": rid, "actor": actor, "purged_at": purged_at.isoformat(),
             "packs_removed": [d["old_name"] for d in switched]}, same=("kind", "request_id"))
        purged_at = dt.datetime.fromisoformat(done["purged_at"])  # a killed run's record keeps its time
        faults.hit("purge_after_done_record")
    with archive.catalog.writing() as con:
        if purge_rows.request_status(con, rid) == "approved":
            purge_rows.mark_purged(con, rid, purged_at, {
                "request_id": rid, "actor": actor, "items": outcome.items,
                "packs_removed": [d["old_name"] for d in switched],
                "packs_written": [d["new_name"] for d in switched if d.get("new_name")]})
    outcome.status = "purged"
    return outcome


def _rewrite_pack(archive: Archive, p: _Pack, drop: set[int], rid: int, now: dt.datetime, actor: str,
                  transaction) -> dict:
    """Steps 1–3 for one pack: the new pack written and checked, then the catalog switched (``transaction``: of
    :meth:`toolkit.catalog.connection.Catalog.transactions`, one per read and one for the switch)."""
    with transaction() as con:
        rows = purge_rows.pack_records(con, p.pack_id)
    gone = [r for r in rows if r[0] in drop]
    keep = [r for r in rows if r[0] not in drop]
    src = archive.storage(p.medium_id)
    footer = PackReader(src, p.name, archive.key, archive.uuid).index()
    if len(footer) != len(rows):
        raise IntegrityError(f"pack {p.name} holds {len(footer)} records but the catalog knows {len(rows)}; nothing "
                             "was purged from it (a full verification names the difference)")
    new = None
    if keep:
        medium = p.medium_id if archive.config.medium(p.medium_id).state in NEW_PACK_STATES \
            else archive.active_medium_id()
        pack_id = new_pack_id(p.pack_id, [r[1] for r in gone])
        new = _write_checked(archive, src, p, keep, medium, pack_id)
    faults.hit("purge_after_new_pack")
    detail = {"request_id": rid, "actor": actor, "old_pack_id": p.pack_id, "old_name": p.name,
              "old_medium": p.medium_id, "new_pack_id": new and new["pack_id"], "new_name": new and new["name"],
              "new_medium": new and new["medium_id"], "purged": [r[0] for r in gone]}
    # the deletion record goes to the medium before the catalog switch (a rebuild reads it back)
    with transaction() as con:
        request = purge_rows.request_row(con, rid)
    record_medium = new["medium_id"] if new else (
        p.medium_id if archive.config.medium(p.medium_id).state in NEW_PACK_STATES else archive.active_medium_id())
    record = deletion_records.put_record(
        archive, archive.storage(record_medium), deletion_records.pack_record_name(rid, p.pack_id),
        {"kind": "pack-purged", "request": request, "actor": actor, "purged_at": now.isoformat(),
         "old_pack_id": p.pack_id, "new_pack_id": new and new["pack_id"], "switch": detail,
         "purged": [{"msg_id": r[0], "blob_id": r[1], "batch_id": r[6]} for r in gone]},
        same=("kind", "old_pack_id", "new_pack_id", "purged"))
    now = dt.datetime.fromisoformat(record["purged_at"])  # a killed run's record keeps its time
    faults.hit("purge_after_record")
    with transaction() as con:
        if purge_rows.pack_row(con, p.pack_id) is None:
            raise IntegrityError(f"pack {p.name} left the catalog while it was purged; rerun the purge")
        purge_rows.switch_pack(con, p.pack_id, new, new["moved"] if new else {},
                               [(r[0], r[1], r[6]) for r in gone], rid, now, detail)
    if new:
        marks.mark_pack(archive.storage(new["medium_id"]), archive.uuid, new["pack_id"], max(r[0] for r in keep))
    faults.hit("purge_after_switch")
    return {"purged": [r[0] for r in gone], "new_pack": new and new["name"]}


def _write_checked(archive: Archive, src, p: _Pack, keep: list[tuple], medium: int, pack_id: bytes) -> dict:
    """The new pack at ``medium`` (written, or a finished one from a killed run) after it read back right."""
    dst = archive.storage(medium)
    name = pack_name(pack_id)
    blake3 = None
    if dst.stat(name) is None:
        reader = PackReader(src, p.name, archive.key, archive.uuid)
        try:
            with PackWriter(dst, archive.key, archive.uuid, pack_id=pack_id) as w:
                for msg_id, blob, offset, length, size, csize, _batch in keep:
                    entry = IndexEntry(bytes.fromhex(blob), offset, length, size, csize)
                    w.add_stream(entry.blob_id, size, reader.stream(entry))
                info = w.seal()
        except ObjectExistsError:
            info = None   # another writer published it meanwhile: check it below like a leftover
        blake3 = info.blake3.hex() if info else None
    entries, got = _read_back(archive, dst, name, {r[1] for r in keep})
    if blake3 is not None and got != blake3:
        raise IntegrityError(f"the new pack {name} on medium {medium} reads back differently from what was "
                             "written; nothing was switched (the medium is unreliable)")
    return {"pack_id": pack_id.hex(), "medium_id": medium, "name": name, "bytes": dst.stat(name).size,
            "records": len(entries), "blake3": got,
            "moved": {e.blob_id.hex(): (e.offset, e.length, e.csize) for e in entries}}


def _read_back(archive: Archive, dst, name: str, want: set[str]) -> tuple[list[IndexEntry], str]:
    """(entries, BLAKE3) of a new pack whose every record authenticates and whose blob ids are ``want``."""
    reader = PackReader(dst, name, archive.key, archive.uuid)
    try:
        results = list(reader.verify_all())
    except MailArchiveError as exc:
        raise IntegrityError(f"the new pack {name} does not read back ({exc}); move it aside and rerun the purge") \
            from None
    bad = [e for e, exc in results if exc is not None]
    blobs = {e.blob_id.hex() for e, _ in results}
    if bad or blobs != want or reader.file_blake3 is None:
        raise IntegrityError(f"the new pack {name} does not hold exactly the kept mails, or a record fails "
                             "to authenticate; nothing was switched (move it aside and rerun the purge)")
    return [e for e, _ in results], reader.file_blake3.hex()


def _remove_old(archive: Archive, d: dict) -> bool:
    """Step 4 for one switched pack: the old file and its mark go once the new pack is in place."""
    if d.get("new_name"):
        st = archive.storage(d["new_medium"]).stat(d["new_name"])
        if st is None:
            raise IntegrityError(f"the new pack {d['new_name']} is missing from medium {d['new_medium']}; the old "
                                 f"pack {d['old_name']} is kept (restore the new one from the mirror)")
    try:
        src = archive.storage(d["old_medium"])
    except MailArchiveError:
        return False   # a medium that cannot be opened keeps its file until a rerun reaches it
    removed = False
    if src.stat(d["old_name"]) is not None:
        src.delete(d["old_name"])
        removed = True
    mark = marks.pack_mark_name(d["old_pack_id"])
    if src.stat(mark) is not None:
        src.delete(mark)
    faults.hit("purge_after_old_removed")
    return removed
