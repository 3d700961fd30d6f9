"""``mirror DEST``: copy every medium, the catalog backups and config snapshots to DEST (docs/media.md).

Layout at DEST::

    MIRROR.json                             sealed state of the last completed run
    medium-<id>/MEDIUM.json                 the medium's label (so DEST/medium-<id> is a valid medium)
    medium-<id>/packs/ab/<pack id>.pack
    medium-<id>/stamps/*.manifest
    medium-<id>/deletions/*.deletion       sealed deletion records of purges (media_tools/deletion_records.py)
    medium-<id>/marks/*.mark                high-water marks (docs/formats.md; toolkit/marks.py)
    medium-<id>/db-backups/*.dbk
    medium-<id>/config/*.sealed

Order (docs/reliability.md A7): the packs of all media first, then stamp manifests,
then high-water marks, then backups and config snapshots, last MIRROR.json. A mark is copied
only for a pack or stamped batch of the catalog read at the start whose pack or manifest DEST
now holds: a mark an import writes meanwhile waits for the next run, and the mark of a pack
missing or corrupt locally stays behind with it. Marks at DEST make a
restore from the mirror see a catalog backup older than the packs the mirror holds (H2, Q10). A killed run leaves at
most a temporary file (ignored by readers, never under a final name); the
next run copies what is missing. So DEST never holds a backup whose packs
are not there — except packs that are missing or corrupt locally, which are
reported (they are lost locally too, and holding back the backups would
only make the mirror older).

Decisions:

* A pack present at DEST with the catalog's size counts as present; with
  ``verify=True`` its BLAKE3 checksum is also read and compared. Every new copy is
  read back and its BLAKE3 checksum compared with the catalog before it counts.
* The local pack is hashed while it is copied; a local pack that is missing
  or whose BLAKE3 checksum differs from the catalog is reported and not copied, and
  nothing at DEST is deleted because of it (Q4).
* A file at DEST that differs (size, or hash with ``verify``) is reported
  and left alone; ``repair=True`` replaces a differing pack by a fresh,
  verified copy (only after the local copy was verified against the catalog).
* Nothing is deleted at DEST unless ``delete=True``, which removes files
  below ``medium-<id>/`` that the local archive no longer has (packs of a
  medium retired by consolidation, backups removed by retention, the
  marks of packs a purge removed); media that could not be read locally are
  never touched. A plain run keeps them: quick verify leaves out the marks of
  packs the catalog records as purged.

Freshness (C10): each run records in the home's
``mirror-status.json`` per DEST the time of its last completed run and, if the
latest run did not complete (DEST unreachable, full, refused), that run's time
and error. A mirror whose latest run failed is "stale since" its last
completed run; ``mailarchive mirror-status DEST`` shows it without touching DEST.

Behind (Q3): a completed run records the extent of the catalog it copied (mails,
highest msg_id, packs, stamped batches; ``toolkit/catalog/extent.py``) in
``mirror-status.json`` and in the sealed ``MIRROR.json``. ``mirror-status`` counts
what the archive committed since (:func:`mirror_lag`); a restore compares the
catalog it restored with ``MIRROR.json``'s extent (``media_tools/restore.py``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from dataclasses import dataclass, field

from toolkit import crypto, faults, hashes, marks
from toolkit.archive import Archive
from toolkit.catalog import backups as backup_rows, media_rows, stamps as stamp_rows
from toolkit.catalog.extent import catalog_extent, committed_since
from toolkit.errors import (ForeignArchiveError, MailArchiveError, MediumError, ObjectExistsError, ObjectMissingError,
                             StorageError)
from toolkit.home import MIRROR_STATE_NAME as STATE_NAME, MIRROR_STATUS_NAME as STATUS_NAME, Home
from toolkit.medium import LABEL_NAME, peek_label, strangers
from toolkit.storage import Storage
from toolkit.storage.probe import probe

from .backup import CONFIG_DIR, newest_config_snapshot

STAMPS_DIR = "stamps"
DELETIONS_DIR = "deletions"
CHUNK = 1 << 20


def medium_dir(medium_id: int) -> str:
    return f"medium-{medium_id}"


def state_key(archive: Archive) -> bytes:
    return crypto.derive_key(archive.key, archive.uuid, "backup")


def open_state(archive_key: bytes, archive_uuid, sealed: bytes) -> dict:
    k = crypto.derive_key(archive_key, archive_uuid, "backup")
    return json.loads(crypto.open_blob(k, sealed, b"mirror-state", what=STATE_NAME))


@dataclass
class MirrorSummary:
    dest: str
    copied: list[str] = field(default_factory=list)
    present: int = 0
    differing: list[dict] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    missing_locally: list[dict] = field(default_factory=list)
    corrupt_locally: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept_at_dest: list[str] = field(default_factory=list)   # packs removed locally, kept on the mirror
    media: list[int] = field(default_factory=list)
    unreadable_media: list[dict] = field(default_factory=list)
    newest_backup: str | None = None
    backup_made: dict | None = None         # the catalog backup made first (``backup_needed``), if any
    bytes_copied: int = 0
    complete: bool = False
    extent: dict | None = None              # the catalog's mails, packs and stamped batches this run copied (Q3)

    @property
    def problems(self) -> bool:
        return bool(self.differing or self.missing_locally or self.corrupt_locally or self.failed or self.unreadable_media)

    def as_dict(self) -> dict:
        return {
            "dest": self.dest, "copied": len(self.copied), "copied_files": self.copied, "already_present": self.present,
            "differing": self.differing, "replaced": self.replaced, "missing_locally": self.missing_locally,
            "corrupt_locally": self.corrupt_locally, "failed": self.failed, "deleted": self.deleted,
            "kept_at_dest": self.kept_at_dest,
            "media": self.media, "unreadable_media": self.unreadable_media, "newest_backup": self.newest_backup,
            "bytes_copied": self.bytes_copied, "complete": self.complete, "backup_made": self.backup_made,
            "extent": self.extent,
        }



class _LocalCorrupt(Exception):
    pass


def _copy(src: Storage, name: str, dest: Storage, dest_name: str, expected_sha: str | None) -> tuple[int, str]:
    """Copy create-only, hashing the local bytes on the way; then read the copy back and compare."""
    h = hashes.checksum_hasher()
    n = 0
    w = dest.open_write(dest_name)
    try:
        with src.open_read(name) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                w.write(chunk)
                n += len(chunk)
        digest = h.hexdigest()
        if expected_sha is not None and digest != expected_sha:
            raise _LocalCorrupt(digest)
        w.commit()
    except BaseException:
        w.abort()
        raise
    back = dest.blake3(dest_name)[0]
    if back != digest:
        try:
            dest.delete(dest_name)
        except MailArchiveError:
            pass
        raise StorageError(f"{dest.location}/{dest_name}: the copy reads back with another checksum (BLAKE3); removed, rerun the mirror")
    return n, digest


class Mirror:
    def __init__(self, archive: Archive, dest: Storage, *, verify: bool = False, delete: bool = False,
                 repair: bool = False, reporter=None, dry_run: bool = False):
        self.archive = archive
        self.dry_run = dry_run  # list what would be copied (and deleted); write nothing at DEST
        self.dest = dest
        self.verify = verify
        self.delete = delete
        self.repair = repair
        self.reporter = reporter
        self.summary = MirrorSummary(dest=dest.location)
        self._dest_files: dict[str, int] | None = None

    def _warn(self, msg: str) -> None:
        if self.reporter is not None:
            self.reporter.warn(msg)

    def _dest_index(self) -> dict[str, int]:
        if self._dest_files is None:
            self._dest_files = {e.name: e.size for e in self.dest.list("")}
        return self._dest_files

    # -- one file ---------------------------------------------------------------------------
    def _sync_file(self, src: Storage, name: str, dest_name: str, size: int | None, sha: str | None, *, kind: str) -> bool:
        """Bring one file to DEST. True if DEST now holds a good copy."""
        s = self.summary
        have = self._dest_index().get(dest_name)
        if have is not None:
            same = size is None or have == size
            if same and sha is not None and self.verify:
                same = self.dest.blake3(dest_name)[0] == sha
            elif same and size is None:
                # small files without a catalog size (labels, manifests, backups): compare bytes
                local = src.stat(name)
                same = local is not None and local.size == have
            if same:
                s.present += 1
                if kind == "pack" and src.stat(name) is None:
                    # Q4: reported, and never propagated as a deletion
                    s.missing_locally.append({"file": dest_name, "location": f"{src.location}/{name}", "at_dest": True})
                    self._warn(f"{src.location}/{name} is missing locally (DEST still holds a copy: restore it from there)")
                return True
            if not (self.repair and kind == "pack"):
                s.differing.append({"file": dest_name, "dest_size": have, "expected_size": size})
                self._warn(f"{self.dest.location}/{dest_name} differs from the archive's copy; left alone (see --repair)")
                return False
        if self.dry_run:
            local = src.stat(name)
            if local is None:
                s.missing_locally.append({"file": dest_name, "location": f"{src.location}/{name}"})
                return False
            s.copied.append(dest_name)
            s.bytes_copied += local.size
            return True
        try:
            if have is not None:
                # repair: copy under a temp name first is what _copy does; the differing file goes only
                # after the local pack verified during a dry hash.
                if src.blake3(name)[0] != sha:
                    raise _LocalCorrupt("")
                self.dest.delete(dest_name)
                self._dest_index().pop(dest_name, None)
            n, _ = _copy(src, name, self.dest, dest_name, sha)
        except ObjectMissingError:
            s.missing_locally.append({"file": dest_name, "location": f"{src.location}/{name}"})
            self._warn(f"{src.location}/{name} is missing locally: not mirrored, nothing deleted at DEST")
            return False
        except _LocalCorrupt:
            s.corrupt_locally.append({"file": dest_name, "location": f"{src.location}/{name}"})
            self._warn(f"{src.location}/{name} does not match its checksum (BLAKE3) in the catalog: not mirrored")
            return False
        except ObjectExistsError:
            # another run created it meanwhile; check it on the next run
            s.present += 1
            return True
        if have is not None:
            s.replaced.append(dest_name)
        s.copied.append(dest_name)
        s.bytes_copied += n
        self._dest_index()[dest_name] = n
        faults.hit("mirror_after_copy")
        return True

    # -- the run ------------------------------------------------------------------------------
    def _prune(self, sources: dict, wanted: dict[int, set[str]]) -> None:
        """Files below ``medium-<id>/`` the local archive no longer has: deleted with ``delete``, else the packs
        among them listed as removed locally and kept at DEST (e.g. rewritten by a purge)."""
        s = self.summary
        for mid in sources:
            prefix = f"{medium_dir(mid)}/"
            for dest_name in sorted(self._dest_index()):
                if not dest_name.startswith(prefix) or dest_name[len(prefix):] in wanted[mid]:
                    continue
                rel = dest_name[len(prefix):]
                if rel.startswith(CONFIG_DIR + "/"):
                    continue  # older config snapshots are harmless history
                if not self.delete:
                    if rel.startswith("packs/"):
                        s.kept_at_dest.append(dest_name)
                    continue
                if not self.dry_run:
                    self.dest.delete(dest_name)
                s.deleted.append(dest_name)
        if s.kept_at_dest:
            self._warn(f"{len(s.kept_at_dest)} pack(s) removed locally, kept on the mirror (a mirror run with "
                       "deletion on removes them there)")

    def _sync_marks(self, sources: dict[int, Storage], wanted: dict[int, set[str]], at_dest: set[str]) -> None:
        """2a. high-water marks: only of packs and stamped batches (in the catalog read) whose files are at DEST."""
        for mid, src in sources.items():
            for e in src.list(marks.MARKS_DIR):
                wanted[mid].add(e.name)
                dest_name = f"{medium_dir(mid)}/{e.name}"
                if dest_name in self._dest_index():
                    self.summary.present += 1  # only its name counts (a mark is never replaced)
                elif e.name in at_dest:
                    self._sync_file(src, e.name, dest_name, e.size, None, kind="mark")

    def _sync_manifests_and_deletions(self, sources: dict, wanted: dict, at_dest: set, stamped) -> None:
        """2. stamp manifests (a stamped batch's mark may follow its manifest), then the deletion records
        (media_tools/deletion_records.py: a catalog rebuilt from the mirror keeps the purges)."""
        for mid, src in sources.items():
            for e in src.list(STAMPS_DIR):
                wanted[mid].add(e.name)
                if self._sync_file(src, e.name, f"{medium_dir(mid)}/{e.name}", e.size, None, kind="manifest"):
                    batch = e.name.rsplit("/", 1)[-1].split("-", 1)[0]
                    if batch.isdigit() and int(batch) in stamped:
                        at_dest.add(marks.batch_mark_name(int(batch)))
        for mid, src in sources.items():
            for e in src.list(DELETIONS_DIR):
                wanted[mid].add(e.name)
                self._sync_file(src, e.name, f"{medium_dir(mid)}/{e.name}", e.size, None, kind="deletion")

    def run(self) -> MirrorSummary:
        a, s = self.archive, self.summary
        media = [m for m in sorted(a.config.media, key=lambda m: m.id) if m.state != "removed"]
        if not self.dry_run:
            probe(self.dest)  # DEST writable, and keeps the case of names (restore authenticates them: C13)
        sources: dict[int, Storage] = {}
        for m in media:
            try:
                sources[m.id] = a.storage(m.id)
            except MailArchiveError as exc:
                s.unreadable_media.append({"medium": m.id, "problem": str(exc)})
                self._warn(f"medium {m.id} cannot be read: {exc}; its copy at DEST is left as it is")
        s.media = sorted(sources)
        with a.catalog.reading() as con:
            packs = media_rows.all_packs(con)
            backups = backup_rows.verified_backup_files(con)
            stamped = stamp_rows.stamped_batch_ids(con)
            s.extent = catalog_extent(con)
        wanted: dict[int, set[str]] = {mid: {LABEL_NAME} for mid in sources}
        # 1. labels and packs of every medium
        for mid, src in sources.items():
            self._sync_file(src, LABEL_NAME, f"{medium_dir(mid)}/{LABEL_NAME}", None, None, kind="label")
        if self.reporter:
            self.reporter.start("mirror", len(packs), "packs")
        at_dest: set[str] = set()  # the packs and manifests DEST now holds good copies of: their marks may follow
        for mid, name, size, sha in packs:
            if mid not in sources:
                continue
            wanted[mid].add(name)
            if self._sync_file(sources[mid], name, f"{medium_dir(mid)}/{name}", size, sha, kind="pack"):
                at_dest.add(marks.pack_mark_name(name.rsplit("/", 1)[-1].removesuffix(".pack")))
            if self.reporter:
                self.reporter.advance("mirror", 1)
        if self.reporter:
            self.reporter.finish("mirror")
        self._sync_manifests_and_deletions(sources, wanted, at_dest, stamped)
        self._sync_marks(sources, wanted, at_dest)
        # 3. backups (verified ones), then the newest config snapshot of each medium
        for name, mid in backups:
            if mid not in sources:
                continue
            rel = name  # medium-relative: db-backups/<ts>-full.dbk
            wanted[mid].add(rel)
            if self._sync_file(sources[mid], rel, f"{medium_dir(mid)}/{rel}", None, None, kind="backup"):
                s.newest_backup = name
        for mid, src in sources.items():
            snaps = [e.name for e in src.list(CONFIG_DIR)]
            # the newest one that verifies: a changed or renamed newer one is named and not mirrored
            snap, _text, refused = newest_config_snapshot(a.key, a.uuid, snaps, src.read)
            for w in refused:
                self._warn(f"medium {mid}: {w}")
            if snap is not None:
                wanted[mid].add(snap)
                self._sync_file(src, snap, f"{medium_dir(mid)}/{snap}", None, None, kind="config")
        # 4. deletions only when asked, only for media read fine
        self._prune(sources, wanted)
        if self.dry_run:
            return s
        # 5. the state, last
        state = {
            "archive": str(a.uuid),
            "mirrored_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "media": s.media,
            "packs": sum(1 for mid, *_ in packs if mid in sources),
            "newest_backup": s.newest_backup,
            "problems": s.problems,
            "extent": s.extent,
        }
        k = state_key(a)
        self.dest.replace(STATE_NAME, crypto.seal_blob(k, json.dumps(state).encode(), b"mirror-state"))
        s.complete = True
        return s


def backup_needed(archive: Archive) -> str | None:
    """Why a mirror needs a catalog backup made first, or None when the newest verified backup is newer
    than every change the catalog records (import runs, stamp batches, packs, media events).

    A mirror without a catalog backup cannot be restored (it holds no catalog and no config
    snapshot), and one with an old backup restores an old catalog: so ``mirror`` makes one first."""
    with archive.catalog.reading() as con:
        newest, changed = backup_rows.backup_freshness(con)
    if newest is None:
        return "there is no catalog backup yet"
    if changed is not None and changed > newest:
        return f"the catalog changed after the newest backup ({newest:%Y-%m-%d %H:%M:%S %Z})"
    return None


def refuse_foreign(archive: Archive, dest: Storage) -> None:
    """Refuse a DEST that holds another archive's mirror: its sealed state does not open with this archive's key,
    or a medium label there names another archive. Mirrored into, it would be no mirror of either (its state
    overwritten, two archives' media in one folder, and with ``delete`` one archive's packs removed as stale)."""
    where = dest.location
    try:
        sealed = dest.read(STATE_NAME)
    except ObjectMissingError:
        sealed = None
    if sealed is not None:
        try:
            open_state(archive.key, archive.uuid, sealed)
        except MailArchiveError:
            raise ForeignArchiveError(
                f"{where} holds the mirror of another archive (its {STATE_NAME} does not open with this archive's "
                "key): choose another destination; that mirror is left as it is") from None
    ours = sealed is not None
    for m in archive.config.media:
        try:
            label = dest.read(f"{medium_dir(m.id)}/{LABEL_NAME}")
        except ObjectMissingError:
            continue
        body = peek_label(label) or {}
        if body.get("archive") != str(archive.uuid):
            raise ForeignArchiveError(
                f"{where}/{medium_dir(m.id)} holds a medium of another archive "
                f"({body.get('archive', 'an unreadable label')}), not of this archive: choose another destination; "
                "that mirror is left as it is")
        ours = True
    if not ours:
        _refuse_strangers(dest)


_MIRROR_TOP = re.compile(r"medium-\d+\Z")


def _refuse_strangers(dest: Storage) -> None:
    """A first mirror goes into an empty place (docs/reliability.md Q7), as a new medium does (P11): files there (a
    user's, a tree of mail meant for import) would sit among the mirror's, and a restore from it would find them. A
    file system's clutter is allowed, and so are the mirror's own names (a first run cut short before it wrote its
    state and labels)."""
    try:
        names = (e.name for e in dest.list(""))
        name = next((n for n in strangers(names) if n != STATE_NAME and not _MIRROR_TOP.match(n.split("/", 1)[0])),
                    None)
    except StorageError:
        return  # a listing that fails: the mirror's own writes say what is wrong with the place
    if name is not None:
        raise MediumError(f"{dest.location} is not empty (it holds {name}) and is no mirror of this archive: a first "
                          "mirror goes into an empty directory; choose another destination, or empty this one first")


def mirror(archive: Archive, dest: Storage, **kw) -> MirrorSummary:
    """Run a mirror and note its outcome in the home (``mirror-status.json``): a run that fails
    leaves the mirror "stale since" its last completed run, and says so in its error. A mirror in or around the
    archive's home or a medium is refused (no second copy, toolkit.places)."""
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest.location, "mirror", around=True, skip=("the configured mirror",))
    refuse_foreign(archive, dest)  # another archive's mirror: refused before anything is written or recorded
    if kw.get("dry_run"):
        return Mirror(archive, dest, **kw).run()
    try:
        summary = Mirror(archive, dest, **kw).run()
    except MailArchiveError as exc:
        st = record_mirror_run(archive.home, dest.location, str(exc))
        since = f"stale since {st['stale_since']}" if st["stale_since"] else "stale: it never completed a run"
        exc.epilogue = f"\nThe mirror at {dest.location} is {since}; the next run catches up."
        exc.args = (f"{exc}{exc.epilogue}", *exc.args[1:])
        raise  # the same error (its type and exit status), its message extended
    record_mirror_run(archive.home, dest.location, None, extent=summary.extent)
    return summary


def mirror_status(home: Path, dest: str) -> dict:
    """The freshness of the mirror at ``dest``: state ``current``, ``stale`` (since ``last_ok``) or ``never``."""
    try:
        entry = json.loads(Home(home).mirror_status_path.read_text()).get(dest, {})
    except (OSError, ValueError):
        entry = {}
    state = "never" if not entry.get("last_ok") else ("stale" if entry.get("last_error") else "current")
    return {"dest": dest, "state": state, "stale_since": entry.get("last_ok") if state == "stale" else None, **entry}


def mirror_lag(archive: Archive, status: dict) -> dict | None:
    """What the archive committed after the last completed mirror run of ``status`` (from
    :func:`mirror_status`): ``{"mails", "packs", "batches"}`` the mirror lacks, None when unknown (no
    completed run, or one of a toolkit that did not record its extent)."""
    if not status.get("last_ok") or not status.get("extent"):
        return None
    with archive.catalog.reading() as con:
        return committed_since(con, status["extent"])


def record_mirror_run(home: Path, dest: str, error: str | None, extent: dict | None = None) -> dict:
    """Note a run's outcome for ``dest`` (atomically; other DESTs' entries stay); returns the new status.
    A completed run also records the ``extent`` of the catalog it copied (Q3)."""
    path = Home(home).mirror_status_path
    try:
        allst = json.loads(path.read_text())
    except (OSError, ValueError):
        allst = {}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entry = allst.setdefault(dest, {})
    if error is None:
        entry.update(last_ok=now, last_error=None, last_failed=None, extent=extent)
    else:
        entry.update(last_error=error, last_failed=now)
    tmp = path.with_name(f"{STATUS_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(allst, indent=1))
    os.replace(tmp, path)
    return mirror_status(home, dest)
