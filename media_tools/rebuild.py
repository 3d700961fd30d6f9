"""``db rebuild``: reconstruct the catalog from the media alone (docs/reliability.md H7, docs/formats.md).

For every medium that is not removed (retired media last), every pack's
footer index is read and each record decrypted and its headers scanned, as
the import did, giving the rows of ``messages``, ``recipients`` and
``packs`` (size and BLAKE3 checksum from the file; the per-pack reading is
:mod:`media_tools.pack_rows`, shared with ``db adopt``). Sealed stamp manifests
(``stamps/*.manifest``) give ``stamp_batches`` back and set
``messages.batch_id`` by blob id; envelope leaves of a batch are reported
(journal envelopes were only in the catalog); event leaves whose document the
manifest carries give the stamped events back (checked against the leaf).

Decisions:

* msg_ids are handed out anew, in the order the catalog had them as far as
  the media tell: first the messages of each stamp batch (batch by batch,
  in the manifest's leaf order — stamping always batched the lowest
  unbatched msg_ids), then the others in pack order (medium, file mtime,
  name) and record offset. When pack mtimes survive (the original media)
  this reproduces the old numbers; after a copy that lost mtimes the
  unstamped ones may differ. Stamps never depend on msg_ids (Merkle leaves
  are blob ids, in msg_id order within a batch, which is kept).
* A blob found again (an orphan pack of a crashed import, or a pack still
  on a retired medium) is counted once, at its first place; a pack found on
  two media is read once. A pack none of whose records is new gets no row
  and is listed as an orphan.
* ``id_conflict`` is set for every message whose Message-ID is shared by
  another archived message (the import marks both sides). ``internal_date``,
  ``run_id`` and sightings came from the sources and are lost;
  ``archived_at`` is the pack file's mtime (an approximation).
* Sightings, runs, run_errors, cursors, events, envelopes, db_backups,
  conversions and message links, the directory, retention policies and legal
  holds exist only in the catalog: reported as lost (with counts when the old
  catalog moved aside with ``force`` still opens), never invented.
* Deletion records (``deletions/*.deletion``, :mod:`.deletion_records`) give
  back the purged mails' tombstones (numbered with the messages into stamp
  order, so a batch's leaves recompute), their requests (``purged`` with a
  done record, else ``approved``) and the ``purge-pack-switched`` events; a
  pack a record names as replaced is never read back (``purged_packs_left``).
* An existing catalog is refused unless ``force``; then it is moved aside
  to ``catalog.duckdb.<UTC ts>.old`` (with its WAL), never deleted.
* Memory stays bounded at any size (docs/reliability.md K8): the blobs found are
  held as 60-bit prefixes (a hit looked up exactly), the manifests' leaves as
  32-byte digests ranked in DuckDB, every catalog session under a DuckDB
  memory limit (a session the limit refuses is made again without it).
"""
from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import json
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from toolkit import crypto
from toolkit.archive import Archive
from toolkit.catalog import Catalog, events, ingest_rows, rebuild_rows
from toolkit.catalog.connection import IMPORT_MEMORY_LIMIT
from toolkit.errors import CatalogError, IntegrityError, MailArchiveError, NextStep, NoArchiveError, UsageError
from toolkit.home import CATALOG_NAME, CONFIG_NAME, Home
from toolkit.known_keys import merged
from toolkit.pack import pack_id_from_name
from toolkit.process_guard import give_back_freed_memory

from . import deletion_records, pack_rows

STAMPS_DIR = "stamps"
MANIFEST_SUFFIX = ".manifest"
LOST_TABLES = ("sightings", "runs", "run_errors", "cursors", "events", "envelopes", "db_backups",
               "conversions", "message_links",  # which mail was converted, and from what; embedded-in links
               "domains", "domain_aliases", "users", "user_addresses", "groups", "group_members",
               "group_assigned", "revisor_scopes",  # the directory: import its file again
               "retention_policies", "legal_holds")
#: held by the catalog and, since deletion records (media_tools/deletion_records.py), by the media too: what
#: the records name comes back (``restored``), the rest of these tables is reported like the lost ones
PARTLY_RESTORED = ("deletion_requests", "deletion_items", "tombstones")
#: DuckDB's memory for the rebuild's catalog sessions: the per-pack appends need what an import's commits need
#: (``IMPORT_MEMORY_LIMIT``); the renumbering into stamp order joins and copies every message, which DuckDB spills
#: beyond this to ``catalog.duckdb.tmp`` (encrypted) instead of holding it at a million mails (K8).
REBUILD_MEMORY_LIMIT = IMPORT_MEMORY_LIMIT
#: ... and for the steps that join, sort or group every message (the renumbering, the shared Message-IDs), run on
#: one DuckDB thread: some of DuckDB's operators pin more than 64 MB there (a million mails), and what DuckDB holds
#: beside its limit (indexes, per-thread state) grows with its threads. Measured on the renumbering of a stamped
#: million alone (bench/RESULTS.md "db rebuild under 400 MB"): 2 threads / 128 MB +225 MB of RSS, 1 / 128 MB +200,
#: 1 / 96 MB +165, 1 / 64 MB refused (and made again without a limit: +1,050 MB, hence the steps of
#: ``Catalog.lift_memory_limit``).
RENUMBER_MEMORY_LIMIT = 96 << 20


@dataclass
class RebuildResult:
    messages: int = 0
    recipients: int = 0
    packs: int = 0
    media: list[int] = field(default_factory=list)
    duplicate_records: int = 0
    orphan_packs: list[str] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    stamp_batches: int = 0
    stamped_messages: int = 0
    manifests_unreadable: list[dict] = field(default_factory=list)
    stamp_problems: list[dict] = field(default_factory=list)
    moved_aside: str | None = None
    lost: dict = field(default_factory=dict)
    #: from deletion records: {"deletion_requests": n, "tombstones": n} and the old catalog's counts beside them
    restored: dict = field(default_factory=dict)
    purged_packs_left: list[str] = field(default_factory=list)  # old packs a purge replaced, still on a medium
    deletion_records_unreadable: list[dict] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        return bool(self.unreadable or self.manifests_unreadable or self.stamp_problems
                    or self.deletion_records_unreadable)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def manifest_key(archive_key: bytes, archive_uuid) -> bytes:
    return crypto.derive_key(archive_key, archive_uuid, "manifest")


def open_manifest(archive_key: bytes, archive_uuid, sealed: bytes, name: str) -> dict:
    plain = crypto.open_blob(manifest_key(archive_key, archive_uuid), sealed, b"stamp-manifest", what=f"stamp manifest {name}")
    try:
        return json.loads(plain)
    except ValueError:
        raise IntegrityError(f"stamp manifest {name}: not JSON") from None


def _iso(value):
    if not value:
        return None
    t = dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def manifest_batch(doc: dict, name: str, medium_id: int) -> tuple[dict, list[str], dict[str, int]]:
    """(stamp_batches row, message blob ids in leaf order, {leaf kind: count} of the other leaves) of a manifest.

    The manifest is the one ``verify.stamping`` writes: archive, batch_id,
    root, leaves [{kind, blob_id, envelope_sha256}], token (base64), nonce,
    tsa_url, ca_fingerprint, gen_time, created_at, and (since the CA history) ca:
    {fingerprint, pem, added_at, tsa_urls}, from which the CA history is rebuilt.
    """
    try:
        batch_id = int(doc["batch_id"])
        leaves = list(doc["leaves"])
        token = base64.b64decode(doc.get("token") or "")
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"stamp manifest {name}: missing or damaged field ({exc})") from None
    serial = None
    try:
        from verify.tokens import parse_fields

        serial = parse_fields(token).serial
    except Exception:  # the serial is informational; the token itself is kept
        serial = None
    blobs = [leaf["blob_id"] for leaf in leaves if leaf.get("kind", "message") == "message"]
    row = {
        "batch_id": batch_id, "leaf_count": len(leaves), "merkle_root": doc.get("root"), "token": token or None,
        "tsa_url": doc.get("tsa_url"), "ca_fingerprint": doc.get("ca_fingerprint"), "gen_time": _iso(doc.get("gen_time")),
        "status": "stamped", "created_at": _iso(doc.get("created_at")), "manifest_name": name, "medium_id": medium_id,
        "serial": serial, "nonce": doc.get("nonce"),
        "_ca": doc.get("ca") if isinstance(doc.get("ca"), dict) else None,  # the batch's TSA CA, for the CA history
    }
    others: dict[str, int] = {}
    restored: list[tuple] = []
    for leaf in leaves:
        kind = leaf.get("kind", "message")
        if kind == "event" and _event_row(leaf) is not None:
            restored.append(_event_row(leaf) + (batch_id,))
            continue
        if kind != "message":
            others[kind] = others.get(kind, 0) + 1
    row["_events"] = restored  # the stamped events the manifest carries, each checked against its leaf
    return row, blobs, others


def _event_row(leaf: dict) -> tuple | None:
    """(event_id, at_time, kind, detail JSON) of an event leaf whose document hashes to the leaf, else None."""
    doc = leaf.get("event")
    if not isinstance(doc, dict):
        return None
    try:
        row = (int(doc["event_id"]), dt.datetime.fromisoformat(doc["at"]), str(doc["kind"]),
               json.dumps(doc["detail"]))
    except (KeyError, TypeError, ValueError):
        return None
    if hashlib.sha256(events.canonical_json(*row)).hexdigest() != leaf.get("event_sha256"):
        return None
    return row


def _ts(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def _old_counts(old_path: Path, catalog_key: bytes) -> dict:
    counts = {t: None for t in LOST_TABLES + PARTLY_RESTORED}
    try:
        cat = Catalog(old_path, catalog_key)
        counts = rebuild_rows.table_counts(cat, LOST_TABLES + PARTLY_RESTORED)
        cat.close()
    except MailArchiveError:
        pass
    return counts


def rebuild_catalog(home: Path, *, force: bool = False, lock_wait: float = 0.0, reporter=None) -> RebuildResult:
    home = Path(home)
    h = Home(home)
    if not h.has_config():
        raise NoArchiveError(f"no archive at {home} (no {CONFIG_NAME})")
    lock = h.lock(lock_wait)
    try:
        config = h.load_config()
        key = h.read_key(config.uuid, config.key_check)
        archive = Archive(h, config, key, lock)
        result = RebuildResult()
        path = h.catalog_path
        result.lost = {t: None for t in LOST_TABLES}
        old_deletions = {t: None for t in PARTLY_RESTORED}
        if path.exists():
            if not force:
                raise UsageError(
                    f"{path} exists; the rebuild replaces the catalog only when forced (the old one is moved aside)",
                    next_step=NextStep.REBUILD_NEEDS_FORCE, hint_args={"path": path},
                )
            aside = path.with_name(f"{CATALOG_NAME}.{_ts(dt.datetime.now(dt.timezone.utc))}.old")
            os.rename(path, aside)
            for suffix in (".wal", ".guard"):  # its WAL, and the checkpoint guard of a killed writer (A6)
                beside = path.with_name(CATALOG_NAME + suffix)
                if beside.exists():
                    os.rename(beside, aside.with_name(aside.name + suffix))
            result.moved_aside = str(aside.absolute())
            counts = _old_counts(aside, crypto.derive_key(key, archive.uuid, "catalog"))
            result.lost = {t: counts[t] for t in LOST_TABLES}
            old_deletions = {t: counts[t] for t in PARTLY_RESTORED}
        archive.catalog.create({"uuid": config.uuid, "created": config.created, "rebuilt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        # an import's bound for the appends and their checkpoints; the renumbering's joins spill beyond it
        archive.catalog.use_memory_limit(REBUILD_MEMORY_LIMIT)  # (docs/reliability.md K8; :func:`_write`)
        archive.sync_media_table()
        try:
            manifests = _read_manifests(archive, result)
            _restore_stamped_events(archive, result, manifests)
            deletions = _read_deletions(archive, result)
            _scan_media(archive, result, reporter, replaced=deletions["replaced"])
            _restore_deletions(archive, result, deletions, old_deletions)
            _reattach_stamps(archive, result, manifests)
            from verify.renewal import restore_renewals

            restore_renewals(archive, result.stamp_problems)  # renewal tokens and their CAs, from their manifests
        finally:
            archive.catalog.close()
        return result
    finally:
        lock.release()


def _write(archive: Archive, fn, limit: int | None = None, threads: int | None = None):
    """``fn(con)`` in one writer session of the catalog under ``limit`` bytes of DuckDB memory (None: the
    rebuild's :data:`REBUILD_MEMORY_LIMIT`) on ``threads`` DuckDB threads (None: as the catalog has them); a session
    the limit refuses was rolled back and is made again under twice, four times, then without the limit
    (``Catalog.lift_memory_limit``): memory, never the rebuild (docs/reliability.md K8). The catalog's limit and
    threads are put back."""
    catalog = archive.catalog
    threads_before = catalog.threads
    if threads is not None:
        catalog.use_threads(threads)
    catalog.use_memory_limit(REBUILD_MEMORY_LIMIT if limit is None else limit)
    try:
        while True:
            try:
                with catalog.writing() as con:
                    return fn(con)
            except (CatalogError, duckdb.OutOfMemoryException) as exc:
                if not isinstance(exc, duckdb.OutOfMemoryException) and not exc.beyond_memory_limit:
                    raise
                if not catalog.lift_memory_limit():
                    raise
    finally:
        catalog.use_memory_limit(REBUILD_MEMORY_LIMIT)
        if threads is not None:
            catalog.use_threads(threads_before)


class _SeenBlobs:
    """The blob ids the rebuild has put in the catalog, as a container of hex ids for ``pack_rows.read_pack``'s
    ``skip``: their 60-bit prefixes in a sorted ``array("Q")`` (8 bytes a mail), the last packs' in a small set
    merged into it now and then (``toolkit.known_keys.merged``: no Python int per prefix held, which a set of a
    million would be, ~60 MB that glibc keeps after: docs/reliability.md K8). A prefix found there is looked up
    exactly in the catalog, so that two blobs sharing a prefix are both kept; hits are the rare mails found
    again."""

    SPILL = 1 << 16

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._sorted = array("Q")
        self._recent: set[int] = set()

    @staticmethod
    def _prefix(blob_hex: str) -> int:
        return int(blob_hex[:15], 16)

    def add_all(self, blob_ids) -> None:
        self._recent.update(map(self._prefix, blob_ids))
        if len(self._recent) >= self.SPILL:
            self._sorted = merged(self._sorted, sorted(self._recent))
            self._recent = set()

    def _may_hold(self, prefix: int) -> bool:
        if prefix in self._recent:
            return True
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i] == prefix

    def __contains__(self, blob_hex: object) -> bool:
        if not isinstance(blob_hex, str) or not self._may_hold(self._prefix(blob_hex)):
            return False
        with self._catalog.reading() as con:
            return rebuild_rows.has_blob(con, blob_hex)


def _scan_media(archive: Archive, result: RebuildResult, reporter, replaced: frozenset = frozenset()) -> None:
    media = [m for m in archive.config.media if m.state != "removed"]
    media.sort(key=lambda m: (m.state == "retired", m.id))
    seen_blobs = _SeenBlobs(archive.catalog)
    seen_packs: set[str] = set()
    next_id = 1
    for m in media:
        try:
            storage = archive.storage(m.id)
        except MailArchiveError as exc:
            result.unreadable.append({"medium": m.id, "problem": str(exc)})
            continue
        result.media.append(m.id)
        entries = [e for e in storage.list("packs") if e.name.endswith(".pack")]
        entries.sort(key=lambda e: (e.mtime, e.name))
        if reporter:
            reporter.start("rebuild", len(entries), "packs")
        for e in entries:
            try:
                pack_id = pack_id_from_name(e.name).hex()
            except IntegrityError as exc:
                result.unreadable.append({"medium": m.id, "pack": e.name, "problem": str(exc)})
                continue
            if pack_id in seen_packs:
                continue
            if pack_id in replaced:  # a purge replaced it (its deletion record): never taken back
                result.purged_packs_left.append(f"medium {m.id}: {e.name}")
                continue
            next_id = _read_pack(archive, storage, m.id, e, pack_id, seen_blobs, next_id, result)
            seen_packs.add(pack_id)
            give_back_freed_memory()  # a pack's records and DuckDB's appends, freed: glibc keeps them otherwise
            if reporter:
                reporter.advance("rebuild", 1)
        if reporter:
            reporter.finish("rebuild")
    _write(archive, ingest_rows.flag_shared_message_ids, RENUMBER_MEMORY_LIMIT, threads=1)
    del seen_blobs
    give_back_freed_memory()


def _read_pack(archive, storage, medium_id, entry, pack_id, seen_blobs, next_id, result) -> int:
    got = pack_rows.read_pack(archive, storage, medium_id, entry, pack_id, skip=seen_blobs)
    result.unreadable += got.problems
    if got.pack is None:
        return next_id
    result.duplicate_records += len(got.skipped)
    if not got.records:
        result.orphan_packs.append(f"medium {medium_id}: {entry.name}")
        return next_id
    messages, recipients = pack_rows.number_rows(got.records, next_id)
    _write(archive, lambda con: pack_rows.append_pack(con, got.pack, messages, recipients))  # as an import's commit
    seen_blobs.add_all(r.blob_id for r in got.records)
    result.packs += 1
    result.messages += len(messages)
    result.recipients += len(recipients)
    return next_id + len(messages)


def _restore_stamped_events(archive: Archive, result: RebuildResult, manifests) -> None:
    """The stamped events (the steps of approved deletions) that the manifests carry, with their ids, times
    and batches: the batches' event leaves recompute again (F05). Before any other event is logged."""
    rows = sorted({r[0]: r for row, _b, _o in manifests for r in row.pop("_events", [])}.values())
    if rows:
        with archive.catalog.writing() as con:
            rebuild_rows.restore_events(con, rows)
    result.restored["stamped_events"] = len(rows)


def _readable_media(archive: Archive):
    """(medium, its storage) for every medium not removed that opens, by id; one that does not open is
    reported by the pack scan."""
    for m in sorted(archive.config.media, key=lambda m: m.id):
        if m.state == "removed":
            continue
        try:
            storage = archive.storage(m.id)
        except MailArchiveError:
            continue
        yield m, storage


def _read_deletions(archive: Archive, result: RebuildResult) -> dict:
    """The deletion records of every medium that is not removed (docs/formats.md "Deletion records"):
    {"packs": records of purged packs, "done": {request_id: done record}, "replaced": old pack ids}."""
    packs: dict[tuple, dict] = {}
    done: dict[int, dict] = {}
    for m, storage in _readable_media(archive):
        docs, problems = deletion_records.read_records(archive, storage)
        result.deletion_records_unreadable += [dict(p, medium=m.id) for p in problems]
        for doc in docs:
            if doc.get("kind") == "request-purged":
                done.setdefault(int(doc["request_id"]), doc)
            elif doc.get("kind") == "pack-purged":
                packs.setdefault((int(doc["request"]["request_id"]), doc["old_pack_id"]), doc)
    return {"packs": [packs[k] for k in sorted(packs)], "done": done,
            "replaced": frozenset(d["old_pack_id"] for d in packs.values())}


def _restore_deletions(archive: Archive, result: RebuildResult, deletions: dict, old: dict) -> None:
    """Deletion requests and tombstones back from the records: a request whose done record is there is
    ``purged`` (with its time), else ``approved`` (a ``purge`` run then completes it); a tombstone per
    purged mail, with the stamp batch and time the record names."""
    requests: dict[int, dict] = {}
    tombstones: list[tuple] = []
    seen: set[tuple] = set()
    switched = [d["switch"] for d in sorted(deletions["packs"], key=lambda d: d["purged_at"]) if d.get("switch")]
    for doc in deletions["packs"]:
        req = doc["request"]
        rid = int(req["request_id"])
        when = _iso(doc["purged_at"])
        if rid not in requests:
            fin = deletions["done"].get(rid)
            requests[rid] = {**{k: (_iso(v) if k.endswith("_at") else v) for k, v in req.items()},
                             "status": "purged" if fin else "approved",
                             "purged_at": _iso(fin["purged_at"]) if fin else None}
        for t in doc["purged"]:
            if (rid, t["msg_id"]) in seen:
                continue
            seen.add((rid, t["msg_id"]))
            tombstones.append((t["blob_id"], t.get("batch_id"), rid, when))
    if requests or tombstones:
        with archive.catalog.writing() as con:
            rebuild_rows.restore_deletions(con, [requests[k] for k in sorted(requests)], tombstones, switched)
    result.restored.update({"deletion_requests": len(requests), "tombstones": len(tombstones),
                            "old_catalog": old})


def _read_manifests(archive: Archive, result: RebuildResult) -> list[tuple[dict, bytes, dict[str, int]]]:
    """(stamp_batches row, its message leaves' blob ids packed by :func:`_packed`, {other leaf kind: count}) of
    every batch whose sealed manifest opens, by batch id."""
    found: dict[int, tuple[dict, bytes, dict[str, int]]] = {}
    for m, storage in _readable_media(archive):
        for e in storage.list(STAMPS_DIR):
            if not e.name.endswith(MANIFEST_SUFFIX):
                continue
            try:
                doc = open_manifest(archive.key, archive.uuid, storage.read(e.name), e.name)
                if doc.get("archive") != str(archive.uuid):
                    raise IntegrityError(f"stamp manifest {e.name} belongs to archive {doc.get('archive')}")
                row, blobs, others = manifest_batch(doc, e.name, m.id)
                del doc
                packed = _packed(blobs, e.name)
            except MailArchiveError as exc:
                result.manifests_unreadable.append({"medium": m.id, "manifest": e.name, "problem": str(exc)})
                continue
            found.setdefault(row["batch_id"], (row, packed, others))  # a copy on a second medium is the same batch
    give_back_freed_memory()  # the parsed manifests (~70 MB each at 100,000 leaves), freed
    return [found[k] for k in sorted(found)]


def _packed(blobs: list[str], name: str) -> bytes:
    """A manifest's message blob ids as one string of 32-byte digests, in leaf order (~32 bytes a leaf held until
    the renumbering instead of ~120 for a hex string in a list: a million stamped mails, K8)."""
    try:
        packed = b"".join(map(bytes.fromhex, blobs))
    except (TypeError, ValueError):
        packed = b""
    if len(packed) != 32 * len(blobs):
        raise IntegrityError(f"stamp manifest {name}: a message leaf's blob_id is not a SHA-256 in hex")
    return packed


def _reattach_stamps(archive: Archive, result: RebuildResult, manifests) -> None:
    """Renumber messages so each batch's leaves are in msg_id order again, then restore stamp_batches.

    Stamping batches the lowest unbatched msg_ids, so the original order was:
    batch 1's messages (in leaf order), batch 2's, ..., then the unbatched
    ones. Rebuilt msg_ids follow that order, so every batch's Merkle root
    recomputes from the rebuilt catalog.
    """
    if not manifests:
        return
    def rank():
        return rebuild_rows.leaf_rank_table([(row["batch_id"], packed) for row, packed, _envs in manifests])

    # The renumbering and the batches' rows are two transactions (the first may be made again without the
    # memory limit); a rebuild stopped between them is, like one stopped anywhere, run again with --force.
    _write(archive, lambda con: rebuild_rows.renumber_by_leaf_rank(con, rank), RENUMBER_MEMORY_LIMIT, threads=1)
    with archive.catalog.writing() as con:
        for row, packed, envs in manifests:
            n_blobs = len(packed) // 32
            first, last, n = rebuild_rows.batch_span(con, row["batch_id"])
            row = dict(row, first_msg_id=first, last_msg_id=last)
            ca = row.pop("_ca", None)
            if ca:
                from verify.ca_history import restore_from_manifest

                try:
                    restore_from_manifest(con, ca, row.get("gen_time"))
                except Exception as exc:  # a damaged CA entry: verify reports the batch it leaves unproven
                    result.stamp_problems.append({"batch_id": row["batch_id"], "problem": f"its TSA CA cannot be restored: {exc}"})
            rebuild_rows.insert_stamp_batch(con, row)
            result.stamp_batches += 1
            result.stamped_messages += n
            if n != n_blobs:
                result.stamp_problems.append(
                    {"batch_id": row["batch_id"], "problem": f"{n_blobs - n} of its {n_blobs} messages were not found on the media"})
            if envs:
                what = {"envelope": "journal envelope", "event": "deletion-event"}
                kinds = " and ".join(f"{n} {what.get(k, k)} leaves" for k, n in sorted(envs.items()))
                result.stamp_problems.append(
                    {"batch_id": row["batch_id"], "problem": f"{kinds}: their rows were only in the catalog (lost)"})
