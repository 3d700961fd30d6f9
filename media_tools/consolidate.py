"""Consolidating media: move every pack of some media onto one target medium (docs/media.md, docs/reliability.md P).

Steps, each safe to interrupt (P5) — rerunning the same command completes the work:

1. **Plan** (:func:`plan_consolidation`): media states, the packs to move, bytes
   to copy, free space at the target (E6: bytes + margin), a write/read/delete
   probe of the target, and of the sources when they are to be purged (C6).
   Any refusal is raised before a byte is copied.
2. **Copy and check**: each source pack is copied into a create-only file of
   the same name at the target (local → local by the kernel, ``copy_file_range``;
   otherwise streamed), flushed to disk, and then the copy is read back and
   its size and BLAKE3 compared with the catalog's — one hash pass, over the
   bytes the target actually holds. When they differ, the source is hashed
   too: if it differs the same way, the source is damaged and its records are
   authenticated one by one to name the affected mails (P6); damage stops the
   consolidation before the catalog changes and the copies made by this run
   are deleted again — unless ``accept_loss``, in which case the pack is
   moved as it is (every record that still authenticates survives) and the
   affected mails are listed in the result and the event log. If only the
   copy differs, the target is unreliable: the copy is removed and the run stops.
   A copy left by an earlier interrupted run is reused when it verifies; a
   file of that name with other content stops everything with its name.
3. **Stamps, backups, config snapshots, deletion records**: every file below ``stamps/``,
   ``db-backups/``, ``config/`` and ``deletions/`` of a source is copied to the same name at
   the target (create-only) and the copy read back and its BLAKE3 compared
   with the source's (and with the catalog's for a backup). A copy left by an
   interrupted run is reused when it matches; a different file of that name
   at the target stops the run before the catalog changes. The source keeps
   its files (the old location is left untouched).
4. **Remap**: once every copy is verified, one catalog transaction moves
   ``packs.medium_id`` of all packs to the target with a ``pack-moved`` event
   per pack, and the ``stamp_batches`` and ``db_backups`` rows naming the
   files of step 3; it commits only when no pack is left on a source. A kill
   before its commit moves nothing (the rerun reuses the verified copies).
   Mails are found through their pack, so they are never read from a source
   again.
5. **Marks**: the high-water marks (``marks/``, docs/formats.md) of the sources are copied to
   the target create-only (a mark already there is kept: only its name counts), so quick
   verify (Q10) still finds a later rollback of the catalog once the sources are retired and
   no longer listed.
6. **Retire**: every source becomes ``retired`` with ``alias_of = target``
   (archive.toml, then the catalog's media table), and one
   ``media-consolidated`` event records the remap (same transaction).
7. **Purge** (only when asked): a source pack file is deleted only after the
   target copy passed a full record-by-record verification and the catalog
   commit; packs copied with accepted damage are kept on the source.

Catalog sessions of a run: one read for the plan (the packs, the backups' checksums, whether an
interrupted run logged the consolidation), and one read-write session holding the remap's
transaction and, after the marks and archive.toml, the retire's transaction (whatever the number
of packs; each transaction commits on its own, so a kill between them is the same as before).

Decisions: the active medium cannot be a source (activate another medium
first); the target must be active or standby. Stamps cover content hashes,
which do not change (P8). The plan's ``copy_bytes`` counts the packs and the
files of 4a still to copy (the data estimate); ``needed`` adds the free-space
margin the target must keep (E6), shown apart as ``margin``. A pack file missing from a source is always refused (restore it from
the mirror first): there is nothing to copy, with or without ``accept_loss``.

Packs are copied by worker threads (hashing and file I/O release the GIL): four
when both media are local, three when an end is on SMB, each thread with its
own SMB connection (an SMB storage's watchdog serves one call at a time, and
several connections keep the server and the client busy at once). Those connections
carry packs only, whose records are sealed: they are signed but not encrypted
(docs/media.md); each pipelines its WRITE and READ requests (toolkit/storage/smb_pipeline.py).
The threads open their connections, and the disk starts reading the first source packs, while
the plan's write probe runs (on a share it waits for the writer lock's recheck; nothing is
written before the probe passed).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

from toolkit import faults, marks
from toolkit.archive import Archive
from toolkit.catalog import backups as backup_rows, events, media_rows
from toolkit.catalog.media_registry import replace_media_rows_in
from toolkit.errors import IntegrityError, MailArchiveError, MediumError, NextStep, ObjectExistsError, StorageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.storage import Storage
from toolkit.storage.location import parse_location
from toolkit.storage.probe import probe

#: Copying threads when every medium is local (while one waits for its fsync, the others copy and hash;
#: bench/RESULTS.md "Consolidation") and when an end is on SMB (each with its own connection).
LOCAL_THREADS = 4
SMB_THREADS = 3
#: Copy buffer: large reads and writes keep the per-call overhead out of the throughput.
COPY_CHUNK = 8 * 1024 * 1024
#: Free space the target must keep beyond the bytes copied (E6): max(64 MiB, 2 %).
MARGIN_MIN = 64 * 1024 * 1024
MARGIN_FRACTION = 0.02
#: Assumed copy rates for the time estimate (bytes/s), from bench/RESULTS.md "## Consolidation".
ASSUMED_RATE = {"local": 150e6, "smb": 60e6}

TARGET_STATES = ("active", "standby")
SOURCE_STATES = ("standby", "deactivated")


class ConsolidationRefused(MediumError):
    """The plan refused the consolidation (nothing was copied); ``.plan`` holds the plan."""

    def __init__(self, message: str, plan: "Plan"):
        super().__init__(message)
        self.plan = plan


class SourceDamaged(IntegrityError):
    """Source packs failed their check; nothing was moved. ``.damaged`` lists packs and mails."""

    next_step = NextStep.ACCEPT_LOSS

    def __init__(self, message: str, damaged: list[dict], plan: "Plan"):
        super().__init__(message)
        self.damaged = damaged
        self.plan = plan


def refused_message(refusals: list[str]) -> str:
    """The message of a refused consolidation, one refusal a line."""
    return "consolidation refused, nothing was copied:\n  " + "\n  ".join(refusals)


@dataclass
class PackTask:
    pack_id: str
    name: str
    source: int
    bytes: int
    records: int
    blake3: str                    # the catalog's checksum of the pack file
    at_target: bool = False        # a file of this name is already at the target (checked while copying)


@dataclass
class Plan:
    sources: list[int]
    target: int
    packs: list[PackTask] = field(default_factory=list)
    bytes: int = 0                 # bytes of all packs to move
    copy_bytes: int = 0            # bytes still to copy (packs not yet at the target)
    free_space: int | None = None  # at the target; None when the storage cannot tell
    needed: int = 0                # copy_bytes + margin
    margin: int = 0                # free space the target must keep beyond the copy (E6)
    meta_files: int = 0            # stamps, backups, config snapshots on the sources
    meta_bytes: int = 0            # their bytes still to copy (part of copy_bytes)
    estimated_seconds: float = 0.0
    already_retired: list[int] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    #: refusal text -> {"next_step": NextStep value, and the values its phrasing names}: the command line
    #: phrases what to do next (the core names no command)
    refusal_steps: dict[str, dict] = field(default_factory=dict)
    probed: bool = False

    def refuse(self, text: str, next_step: NextStep | None = None, **hint_args) -> None:
        """One reason to refuse, with the kind of what to do next."""
        self.refusals.append(text)
        if next_step is not None:
            self.refusal_steps[text] = {"next_step": next_step.value, **hint_args}

    @property
    def ok(self) -> bool:
        return not self.refusals

    def as_dict(self) -> dict:
        d = asdict(self)
        d["packs"] = [asdict(p) for p in self.packs]
        d["ok"] = self.ok
        return d


@dataclass
class _Outcome:
    task: PackTask
    status: str = "pending"        # copied | already-copied | damaged-copied | damaged | moved | error
    blake3: str | None = None      # checksum of the bytes at the target
    created: bool = False          # this run created the target file
    error: str | None = None
    lost: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _margin(nbytes: int) -> int:
    return max(MARGIN_MIN, int(nbytes * MARGIN_FRACTION))


def _kind(archive: Archive, medium_id: int) -> str:
    return "smb" if parse_location(archive.config.medium(medium_id).location).is_smb else "local"


# ---------------------------------------------------------------------------------------------- plan


def plan_consolidation(
    archive: Archive,
    sources: list[int],
    target: int,
    *,
    purge_sources: bool = False,
    margin: int | None = None,
    probe_media: bool = True,
    before_probe: Callable[[Plan], None] | None = None,
    read_also: Callable[[object, Plan], None] | None = None,
) -> Plan:
    """The plan, with every reason to refuse in ``plan.refusals`` (nothing is written except probes).

    ``margin`` overrides the free-space margin (bytes); ``probe_media=False``
    skips the write probes (dry runs). ``before_probe(plan)`` is called once the packs are
    listed and the media opened, before the probes (which may wait for a share's lock).
    ``read_also(con, plan)`` reads more from the catalog in the session that lists the packs.
    """
    sources = list(dict.fromkeys(int(s) for s in sources))
    plan = Plan(sources=sources, target=target)
    live_sources = _check_states(archive, plan)
    if plan.refusals:
        return plan
    _list_packs(archive, plan, read_also)
    opened = _open_media(archive, plan, live_sources)
    if opened is None:
        return plan
    dst, srcs = opened
    _check_packs_at_sources(plan, dst, srcs)
    _check_free_space(archive, plan, dst, srcs, margin)
    if probe_media and not plan.refusals:
        if before_probe is not None:
            before_probe(plan)
        _probe_media(plan, dst, srcs, purge_sources)
    return plan


def _check_states(archive: Archive, plan: Plan) -> list[int]:
    """Refuse media in the wrong state (P10); returns the sources still to empty (not yet retired)."""
    sources, target = plan.sources, plan.target
    refuse = plan.refuse
    if not sources:
        refuse("no source medium given", NextStep.NAME_SOURCE_MEDIA)
    if target in sources:
        refuse(f"medium {target} is both a source and the target; a medium cannot be consolidated into itself (P10)")
    t = archive.config.medium(target)
    if t is None:
        refuse(f"the target medium {target} does not exist", NextStep.LIST_MEDIA)
    elif t.state not in TARGET_STATES:
        refuse(f"the target medium {target} is {t.state}; consolidate into an active or standby medium")
    live_sources = []
    for sid in sources:
        m = archive.config.medium(sid)
        if m is None:
            refuse(f"source medium {sid} does not exist", NextStep.LIST_MEDIA)
        elif m.state == "retired" and m.alias_of == target and sid != target:
            plan.already_retired.append(sid)
        elif m.state == "retired":
            refuse(f"source medium {sid} is already retired into medium {m.alias_of}")
        elif m.state == "removed":
            refuse(f"source medium {sid} was removed and holds nothing to move")
        elif m.state == "active" and sid == target:  # the refusal above says what is wrong; no activation helps
            continue
        elif m.state == "active":
            refuse(f"source medium {sid} is the active medium; activate another medium first so that new packs go "
                   f"elsewhere", NextStep.ACTIVATE_TARGET_FIRST, sid=sid, target=target)
        elif m.state not in SOURCE_STATES:
            refuse(f"source medium {sid} is {m.state}")
        else:
            live_sources.append(sid)
    return live_sources


def _list_packs(archive: Archive, plan: Plan, read_also: Callable[[object, Plan], None] | None = None) -> None:
    """The packs the catalog keeps on the sources; a retired source must hold none."""
    with archive.catalog.reading() as con:
        rows = media_rows.packs_on_media(con, plan.sources)
        if read_also is not None:
            read_also(con, plan)
    plan.packs = [PackTask(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
    plan.bytes = sum(p.bytes for p in plan.packs)
    for sid in plan.already_retired:
        if any(p.source == sid for p in plan.packs):
            plan.refusals.append(
                f"source medium {sid} is retired into {plan.target} but the catalog still puts packs on it")


def _open_media(archive: Archive, plan: Plan, live_sources: list[int]) -> tuple[Storage, dict[int, Storage]] | None:
    """The target's and the live sources' storages, or None (with the refusals noted) if one does not open."""
    try:
        dst = archive.storage(plan.target)
    except MailArchiveError as exc:
        plan.refuse(f"the target medium {plan.target} cannot be opened: {exc}", exc.next_step, **exc.hint_args)
        return None
    srcs: dict[int, Storage] = {}
    for sid in live_sources:
        try:
            srcs[sid] = archive.storage(sid)
        except MailArchiveError as exc:
            plan.refuse(f"source medium {sid} cannot be opened: {exc}", exc.next_step, **exc.hint_args)
    if plan.refusals:
        return None
    return dst, srcs


def _check_packs_at_sources(plan: Plan, dst: Storage, srcs: dict[int, Storage]) -> None:
    """Note which packs are already at the target (and the bytes left to copy); refuse a pack missing at its source."""
    missing = []
    for p in plan.packs:
        st = dst.stat(p.name)
        p.at_target = st is not None
        if st is None:
            plan.copy_bytes += p.bytes
        s = srcs[p.source].stat(p.name)
        if s is None:
            missing.append(p)
    for p in missing:
        head = f"pack {p.name} ({p.records} mail(s)) is missing on source medium {p.source}"
        plan.refuse(f"{head}; restore it from the mirror (or point the medium at its files again) before consolidating",
                    NextStep.RESTORE_OR_RETARGET_SOURCE, head=head)


def _check_free_space(archive: Archive, plan: Plan, dst: Storage, srcs: dict[int, Storage], margin: int | None) -> None:
    """Count the stamps, backups and config snapshots to copy too; refuse a target without room for all (E6)."""
    target = plan.target
    for sid, src in srcs.items():
        for e in _meta_files(src):
            plan.meta_files += 1
            if dst.stat(e.name) is None:
                plan.meta_bytes += e.size
    plan.copy_bytes += plan.meta_bytes
    plan.margin = margin if margin is not None else _margin(plan.copy_bytes)
    plan.needed = plan.copy_bytes + plan.margin
    try:
        plan.free_space = dst.free_space()
    except StorageError as exc:
        plan.refusals.append(f"cannot query free space on medium {target}: {exc}")
    if plan.free_space is not None and plan.free_space < plan.needed:
        plan.refusals.append(
            f"medium {target} has {plan.free_space} bytes free but the consolidation needs {plan.needed} "
            f"({plan.copy_bytes} to copy + margin); free space or choose another target (E6)"
        )
    plan.estimated_seconds = round(plan.copy_bytes / ASSUMED_RATE[_kind(archive, target)] + 0.1 * len(plan.packs), 1)


def _probe_media(plan: Plan, dst: Storage, srcs: dict[int, Storage], purge_sources: bool) -> None:
    """Create, write, read and delete a file on the target, and on the sources when they are to be purged (C6)."""
    to_probe = [(plan.target, dst)] + ([(sid, s) for sid, s in srcs.items()] if purge_sources else [])
    for mid, s in to_probe:
        try:
            probe(s)
        except StorageError as exc:
            plan.refusals.append(f"medium {mid} failed the preflight (create, write, read, delete): {exc} (C6)")
    plan.probed = True


# ---------------------------------------------------------------------------------------------- copy



class _Ends:
    """The storages a copying thread uses: local media shared, an SMB medium one connection per thread."""

    def __init__(self, archive: Archive):
        self.archive = archive
        self.warming: list = []  # futures of the threads opening their connections (see _warm_up)
        self._mine = threading.local()
        self._opened: list[Storage] = []
        self._lock = threading.Lock()

    def get(self, medium_id: int) -> Storage:
        if _kind(self.archive, medium_id) == "local":
            return self.archive.storage(medium_id)
        conns = getattr(self._mine, "conns", None)
        if conns is None:
            conns = self._mine.conns = {}
        if medium_id not in conns:
            conns[medium_id] = self.archive.extra_connection(medium_id, sealed_only=True)  # packs only
            with self._lock:
                self._opened.append(conns[medium_id])
        return conns[medium_id]

    def close(self) -> None:
        for s in self._opened:
            try:
                s.close()
            except Exception:
                pass


def _copy_one(src: Storage, dst: Storage, task: PackTask, accept_loss: bool, target: int) -> _Outcome:
    """Copy one pack (or recognise an earlier copy) and verify the copy by reading it back once."""
    out = _Outcome(task)
    t0 = time.perf_counter()
    st = dst.stat(task.name)
    if st is not None:
        got, n = dst.blake3(task.name)
        if got == task.blake3 and n == task.bytes:
            out.status, out.blake3 = "already-copied", got
            out.seconds = time.perf_counter() - t0
            return out
        src_sha, src_n = src.blake3(task.name)
        if src_sha == got and src_n == n:  # the source itself differs from the catalog: damaged
            out.status = "damaged-copied" if accept_loss else "damaged"
            out.blake3 = got
            out.created = not accept_loss  # our copy of a damaged pack: removed again when the run refuses
            return out
        raise ObjectExistsError(
            f"medium {target} already holds a different file {task.name} ({n} bytes, BLAKE3 {got[:16]}…, "
            f"expected {task.blake3[:16]}…); move it aside and rerun"
        )

    n = dst.copy_in(task.name, src, task.name, COPY_CHUNK)  # create-only; local → local in the kernel
    out.created = True
    faults.hit("consolidate_after_copy")
    got, m = dst.blake3(task.name)  # the copy, read back: this is the check that counts
    if got != task.blake3 or m != task.bytes:
        src_sha, src_n = src.blake3(task.name)
        if src_sha != got or src_n != m:
            _delete_quietly(dst, task.name)
            raise IntegrityError(
                f"the copy of {task.name} on medium {target} reads back differently from its source "
                f"({m} of {n} bytes, BLAKE3 {got[:16]}…): the target medium is unreliable; the copy was "
                "removed and nothing was moved"
            )
        # the source itself differs from the catalog: damaged (the copy goes again unless accept_loss)
        out.status, out.blake3 = ("damaged-copied" if accept_loss else "damaged"), got
        out.seconds = time.perf_counter() - t0
        return out
    faults.hit("consolidate_after_verify")
    out.status, out.blake3 = "copied", got
    out.seconds = time.perf_counter() - t0
    return out


def _delete_quietly(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except MailArchiveError:
        pass


def _affected_mails(archive: Archive, src: Storage, task: PackTask) -> list[dict]:
    """The mails of a damaged pack whose records no longer authenticate (all of them if unreadable)."""
    from toolkit.pack import IndexEntry, PackReader  # only for damaged packs: a copy needs no record reader

    with archive.catalog.reading() as con:
        rows = media_rows.records_in_pack(con, task.pack_id)
    by_offset = {r[4]: r for r in rows}
    entries = [IndexEntry(bytes.fromhex(r[1]), r[4], r[5], r[6], r[7]) for r in rows]
    bad: dict[int, str] = {}
    try:
        for entry, exc in PackReader(src, task.name, archive.key, archive.uuid).verify_all(entries):
            if exc is not None:
                bad[entry.offset] = str(exc)
    except MailArchiveError as exc:
        bad = {r[4]: f"pack unreadable: {exc}" for r in rows}
    return [
        {"msg_id": by_offset[o][0], "blob_id": by_offset[o][1], "message_id": by_offset[o][2],
         "subject": by_offset[o][3], "pack": task.name, "error": err}
        for o, err in sorted(bad.items())
    ]


# ---------------------------------------------------------------------------------------------- catalog


def _moved_detail(out: _Outcome, target: int) -> dict:
    """The detail of a pack's ``pack-moved`` event."""
    t = out.task
    detail = {"pack_id": t.pack_id, "name": t.name, "from": t.source, "to": target, "blake3": out.blake3}
    if out.status == "damaged-copied":
        detail["damaged"] = True
        detail["catalog_blake3"] = t.blake3
        detail["lost_msg_ids"] = [m["msg_id"] for m in out.lost]
    return detail


def _consolidated_logged(con, sources: list[int], target: int) -> bool:
    """Has a ``media-consolidated`` event of an earlier (interrupted) run already recorded these sources?"""
    done: set[int] = set()
    for d in events.event_details(con, "media-consolidated"):
        if d.get("target") == target:
            done.update(d.get("sources", []))
    return set(sources) <= done


# ---------------------------------------------------------------------------------------------- run


def consolidate(
    archive: Archive,
    sources: list[int],
    target: int,
    *,
    accept_loss: bool = False,
    purge_sources: bool = False,
    margin: int | None = None,
    reporter: Reporter | None = None,
    workers: int | None = None,
) -> dict:
    """Move every pack of ``sources`` onto ``target`` and retire the sources (see the module doc).

    Needs an archive opened as writer. Raises :class:`ConsolidationRefused`
    (plan refusals) or :class:`SourceDamaged` (P6, nothing moved); returns
    ``{"plan", "packs": [per-pack outcome], "lost": [mails], "purged", "summary"}``.
    """
    reporter = reporter or NullReporter()
    started = time.perf_counter()
    if workers is None:
        ends_at = [target, *sources]
        live = [m for m in ends_at if (e := archive.config.medium(m)) is not None and e.state not in ("retired", "removed")]
        workers = LOCAL_THREADS if all(_kind(archive, m) == "local" for m in live) else SMB_THREADS
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    ends = _Ends(archive)
    known: dict = {}  # read with the plan (we hold the writer lock: nothing else changes them meanwhile)

    def read_also(con, plan: Plan) -> None:
        known["backup_sha"] = backup_rows.backup_hashes(con)
        known["logged"] = _consolidated_logged(con, plan.sources, target)

    try:
        plan = plan_consolidation(archive, sources, target, purge_sources=purge_sources, margin=margin,
                                  before_probe=lambda plan: _warm_up(plan, pool, ends, workers), read_also=read_also)
        if not plan.ok:
            raise ConsolidationRefused(refused_message(plan.refusals), plan)
        dst = archive.storage(target)
        srcs = {sid: archive.storage(sid) for sid in {p.source for p in plan.packs}}
        outcomes, failure = _copy_packs(plan, accept_loss, workers, reporter, pool, ends)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        ends.close()
    _stop_on_failure(archive, plan, dst, srcs, outcomes, failure, accept_loss)
    live_sources = [sid for sid in plan.sources if sid not in plan.already_retired]
    meta = _copy_meta(archive, live_sources, target, known["backup_sha"])
    faults.hit("consolidate_after_meta")
    with archive.catalog.transactions() as transaction:  # one attach for the remap's and the retire's commits
        _remap(transaction, plan, outcomes, meta, reporter)
        meta += _carry_marks(archive, live_sources, target)
        lost = _retire_sources(archive, transaction, plan, outcomes, known["logged"])
    purged = purge(archive, plan.sources, target, reporter) if purge_sources else []
    return _report(plan, outcomes, meta, lost, purged, time.perf_counter() - started)


#: Packs whose source file the disk starts reading during the plan's probes, per copying thread.
WARM_PACKS_PER_THREAD = 2


def _warm_up(plan: Plan, pool: ThreadPoolExecutor | None, ends: "_Ends", workers: int) -> None:
    """Meanwhile the probes run (a share's lock waits ``recheck`` seconds before it counts, toolkit/shared_lock.py):
    each copying thread opens its connections (reads only: nothing is written before the probe passed) and the
    first packs of local sources are read ahead into the page cache."""
    if not plan.packs:
        return
    for p in plan.packs[: workers * WARM_PACKS_PER_THREAD]:
        ends.archive.storage(p.source).prefetch(p.name)  # a hint: local sources only, nothing for SMB
    media = [plan.target, *sorted({p.source for p in plan.packs})]
    if pool is None or all(_kind(ends.archive, m) == "local" for m in media):
        return
    barrier = threading.Barrier(workers)

    def connect() -> None:
        try:
            barrier.wait(timeout=30)  # one task per thread: each waits until all threads hold one
        except threading.BrokenBarrierError:
            pass
        for m in media:
            ends.get(m)  # an error here comes back when the thread copies its first pack

    ends.warming = [pool.submit(connect) for _ in range(workers)]


def _copy_packs(plan: Plan, accept_loss: bool, workers: int, reporter: Reporter, pool: ThreadPoolExecutor | None,
                ends: "_Ends") -> tuple[list[_Outcome], BaseException | None]:
    """Copy and check every pack (no catalog change): (one outcome per pack in the plan's order, the first
    copy failure or None); a pack whose copy failed has status ``error``."""
    target = plan.target
    reporter.start("copy", len(plan.packs), "packs")
    outcomes: list[_Outcome] = []
    failure: BaseException | None = None
    for f in ends.warming:  # the connections are open (or failed: the copy names the error)
        f.exception()

    def copy(i: int) -> _Outcome:
        p = plan.packs[i]
        src = ends.get(p.source)
        if i + workers < len(plan.packs):  # the pack this thread takes next: the disk reads it meanwhile
            ahead = plan.packs[i + workers]
            ends.get(ahead.source).prefetch(ahead.name)
        return _copy_one(src, ends.get(target), p, accept_loss, target)

    if pool is not None:
        calls = [pool.submit(copy, i).result for i in range(len(plan.packs))]
    else:  # one worker: copy in this thread
        calls = [lambda i=i: copy(i) for i in range(len(plan.packs))]
    for p, call in zip(plan.packs, calls):
        try:
            out = call()
        except Exception as exc:  # keep collecting, so every created copy is known
            failure = failure or exc
            out = _Outcome(p, status="error", error=str(exc))
        outcomes.append(out)
        reporter.advance("copy", 1, bytes=p.bytes if out.status in ("copied", "damaged-copied") else 0)
    reporter.finish("copy")
    return outcomes, failure


def _stop_on_failure(archive: Archive, plan: Plan, dst: Storage, srcs: dict[int, Storage], outcomes: list[_Outcome],
                     failure: BaseException | None, accept_loss: bool) -> None:
    """List the mails of damaged packs; raise the copy failure, or :class:`SourceDamaged` unless ``accept_loss``,
    after removing the copies this run made."""
    damaged = [o for o in outcomes if o.status in ("damaged", "damaged-copied")]
    for o in damaged:
        o.lost = _affected_mails(archive, srcs[o.task.source], o.task)
    if failure is None and not (damaged and not accept_loss):
        return
    _remove_created(dst, outcomes)
    if failure is not None:
        raise failure
    listing = [m for o in damaged for m in o.lost]
    lines = [f"pack {o.task.name} on medium {o.task.source} differs from the catalog's BLAKE3" for o in damaged]
    lines += [
        f"mail {m['msg_id']} {m['message_id'] or ''} {m['subject']!r}: {m['error']}" for m in listing
    ]
    raise SourceDamaged(
        "consolidation stopped before anything was moved: source packs are damaged (P6)\n  "
        + "\n  ".join(lines)
        + "\nRestore the packs from the mirror",
        [{"pack": o.task.name, "medium": o.task.source, "mails": o.lost} for o in damaged],
        plan,
    )


def _remap(transaction, plan: Plan, outcomes: list[_Outcome], meta: list[dict], reporter: Reporter) -> None:
    """One catalog transaction, once every copy is verified: every pack moves to the target (with its
    ``pack-moved`` event) and so do the stamp manifests and backups copied there; no pack may be left on a
    source. A kill before the commit moves nothing (the rerun reuses the verified copies)."""
    target = plan.target
    rows = [m for m in meta if m["file"].startswith(("stamps/", "db-backups/"))]
    reporter.start("remap", len(outcomes), "packs")
    with transaction() as con:
        media_rows.move_packs(con, [(o.task.pack_id, o.task.source) for o in outcomes], target)
        events.log_events(con, "pack-moved", [_moved_detail(o, target) for o in outcomes])
        for m in rows:
            if m["file"].startswith("stamps/"):
                media_rows.move_stamp_manifest(con, m["file"], m["from"], target)
            else:
                backup_rows.move_backup(con, m["file"], m["from"], target)
        left = media_rows.count_packs_on(con, plan.sources)
        if left:  # rolled back
            raise MediumError(f"{left} pack(s) would stay on the source media after the remap; rerun the consolidation")
    if outcomes:
        faults.hit("consolidate_after_commit")
    for o in outcomes:
        o.status = "moved" if o.status != "damaged-copied" else "moved-damaged"
    reporter.advance("remap", len(outcomes))
    reporter.finish("remap")


def _retire_sources(archive: Archive, transaction, plan: Plan, outcomes: list[_Outcome], logged: bool) -> list[dict]:
    """Retire the sources into the target (archive.toml, then the catalog's media table) and log the
    consolidation unless ``logged`` (an interrupted run did). Returns the mails lost."""
    target = plan.target
    faults.hit("consolidate_before_retire")
    for sid in plan.sources:
        m = archive.config.medium(sid)
        m.state, m.alias_of = "retired", target
    archive.save_config()  # the registry is the truth (archive.toml); the catalog's copy and the event follow
    lost = [m for o in outcomes for m in o.lost]
    with transaction() as con:
        replace_media_rows_in(con, archive.config.media)
        if not logged:
            events.log_event(con, "media-consolidated", {
                "sources": plan.sources, "target": target,
                "remap": {str(s): target for s in plan.sources},
                "packs": len(outcomes), "bytes": plan.bytes,
                "lost_msg_ids": [m["msg_id"] for m in lost],
            })
    return lost


def _report(plan: Plan, outcomes: list[_Outcome], meta: list[dict], lost: list[dict], purged: list[str],
            seconds: float) -> dict:
    """The result of :func:`consolidate`."""
    copied = sum(o.task.bytes for o in outcomes if o.created)
    return {
        "plan": plan.as_dict(),
        "packs": [
            {"pack": o.task.name, "from": o.task.source, "bytes": o.task.bytes, "status": o.status,
             "blake3": o.blake3, "copied": o.created, "seconds": round(o.seconds, 3), "lost": o.lost}
            for o in outcomes
        ],
        "lost": lost,
        "purged": purged,
        "meta": meta,
        "summary": {
            "sources": plan.sources, "target": plan.target, "packs_moved": len(outcomes),
            "bytes_moved": plan.bytes, "bytes_copied": copied,
            "already_copied": sum(1 for o in outcomes if not o.created),
            "meta_files_moved": len(meta), "meta_bytes_copied": sum(m["bytes"] for m in meta if m["copied"]),
            "mails_lost": len(lost), "packs_purged": len(purged),
            "seconds": round(seconds, 3),
            "mb_per_s": round(copied / 1e6 / seconds, 1) if seconds > 0 else None,
        },
    }


META_DIRS = ("stamps", "db-backups", "config", "deletions")


def _meta_files(storage: Storage) -> list:
    """The stamp manifests, catalog backups, config snapshots and deletion records on a medium (temporary
    files left out)."""
    return [e for d in META_DIRS for e in storage.list(d)]


def _copy_meta(archive: Archive, sources: list[int], target: int, backup_sha: dict[str, str]) -> list[dict]:
    """Copy each source's stamps/, db-backups/, config/ to the target with verification (no catalog change:
    the remap's transaction re-points the rows naming them). ``backup_sha``: the catalog's BLAKE3 of each
    backup file."""
    dst = archive.storage(target)
    moved = []
    for sid in sources:
        src = archive.storage(sid)
        for e in _meta_files(src):
            want, n = src.blake3(e.name)
            if e.name in backup_sha and backup_sha[e.name] != want:
                raise IntegrityError(
                    f"backup {e.name} on medium {sid} differs from the catalog's BLAKE3; nothing was retired "
                    f"(remove that backup's file or restore it from the mirror, then rerun)"
                )
            copied = False
            if dst.stat(e.name) is None:
                dst.copy_in(e.name, src, e.name, COPY_CHUNK)
                copied = True
            got, m = dst.blake3(e.name)
            if (got, m) != (want, n):
                if copied:
                    _delete_quietly(dst, e.name)
                    raise IntegrityError(
                        f"the copy of {e.name} on medium {target} reads back differently from medium {sid}: "
                        f"the target medium is unreliable; nothing was retired"
                    )
                raise ObjectExistsError(
                    f"medium {target} already holds a different file {e.name}; move it aside and rerun"
                )
            moved.append({"file": e.name, "from": sid, "bytes": n, "blake3": got, "copied": copied})
    return moved


#: Threads copying the high-water marks onto a local target (each copy is two fsyncs; they overlap).
MARK_THREADS = 4


def _carry_marks(archive: Archive, sources: list[int], target: int) -> list[dict]:
    """Copy each source's high-water marks to the target, create-only, each read back (step 5). Onto a local
    target several at once; onto a share one after the other over the medium's own (encrypted) connection."""
    dst = archive.storage(target)
    todo = [(sid, e.name) for sid in sources for e in archive.storage(sid).list(marks.MARKS_DIR)]

    def carry(item: tuple[int, str]) -> dict | None:
        sid, name = item
        if dst.stat(name) is not None:
            return None  # only its name counts: a mark already there stays as it is
        body = archive.storage(sid).read(name)
        try:
            dst.put(name, body)
        except ObjectExistsError:
            return None
        if dst.read(name) != body:
            _delete_quietly(dst, name)
            raise IntegrityError(f"the copy of {name} on medium {target} reads back differently from medium "
                                 f"{sid}: the target medium is unreliable; nothing was retired")
        return {"file": name, "from": sid, "bytes": len(body), "blake3": None, "copied": True}

    if len(todo) > 1 and all(_kind(archive, m) == "local" for m in [target, *sources]):
        with ThreadPoolExecutor(max_workers=MARK_THREADS) as pool:
            done = list(pool.map(carry, todo))
    else:
        done = [carry(item) for item in todo]
    return [d for d in done if d is not None]


def _remove_created(dst: Storage, outcomes: list[_Outcome]) -> None:
    for o in outcomes:
        if o.created:
            try:
                dst.delete(o.task.name)
            except StorageError:
                pass


def purge(archive: Archive, sources: list[int], target: int, reporter: Reporter | None = None) -> list[str]:
    """Delete source pack files whose pack the catalog now keeps on ``target`` and whose target copy
    passes a full verification (every record authenticates, file BLAKE3 equals the catalog's).
    Packs moved with accepted damage fail that check and stay on the source."""
    from toolkit.pack import PackReader

    reporter = reporter or NullReporter()
    dst = archive.storage(target)
    with archive.catalog.reading() as con:
        on_target = {name: sha for name, _size, sha in media_rows.packs_on_medium(con, target)}
    purged = []
    for sid in sources:
        src = archive.storage(sid)
        for entry in list(src.list("packs")):
            sha = on_target.get(entry.name)
            if sha is None:
                continue   # not (yet) moved: keep
            reader = PackReader(dst, entry.name, archive.key, archive.uuid)
            try:
                failed = [e for e, exc in reader.verify_all() if exc is not None]
            except MailArchiveError as exc:
                reporter.warn(f"kept {entry.name} on medium {sid}: the target copy does not verify ({exc})")
                continue
            if failed or reader.file_blake3 is None or reader.file_blake3.hex() != sha:
                reporter.warn(f"kept {entry.name} on medium {sid}: the target copy does not fully verify")
                continue
            src.delete(entry.name)
            purged.append(f"{sid}:{entry.name}")
            reporter.advance("purge", 1)
    if purged:
        with archive.catalog.writing() as con:
            events.log_event(con, "media-purged", {"sources": sources, "target": target, "packs": purged})
    return purged
