"""``restore --from DEST``: a new archive home from a mirror (docs/media.md, docs/reliability.md Q1–Q3, B6).

Steps: the key from the printable key backup and its password; the config
from the newest config snapshot at DEST that opens; the catalog from the
newest backup chain (a full backup plus the incrementals after it) whose
every file opens and checks — a truncated or damaged backup is refused and
the next older chain is used, and the result says which were refused (B6);
media pointed at DEST/medium-<id> (unless ``keep_locations``); last a
verification that every pack the catalog lists is at its medium with the
catalog's size and BLAKE3 checksum. Missing or corrupt packs are listed with the
messages they hold: "restored with losses" (Q2). The home is built in a
temporary sibling directory and renamed into place only at the end.

A restored catalog older than the mirror (its newest backup refused, or a mirror run
stopped after the packs) is said once, with one next step (``db rebuild --force``): from
the high-water marks at DEST (the packs and stamp batches a later catalog committed, the
same ones quick verify's Q10 then names: ``toolkit/marks.py`` ``lacking``) together with
the extent the mirror's last run recorded (Q3), else from the packs at DEST the catalog
does not list (a mirror without marks or state).
"""
from __future__ import annotations

import os
import re
import shutil
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import marks
from toolkit.archive import Archive, key_check
from toolkit.home import Home
from toolkit.errors import (
    ArchiveExistsError,
    IntegrityError,
    MailArchiveError,
    NextStep,
    StorageError,
    UsageError,
    WrongKeyError,
)
from toolkit.keybackup import import_key_backup
from toolkit.storage import Storage, parse_location
from toolkit.catalog import backups as backup_rows, media_rows, purge_rows, stamps as stamp_rows
from toolkit.catalog.extent import catalog_extent, describe, short_of

from .backup import (BACKUP_DIR, CONFIG_DIR, BackupContent, apply_steps, check_backup_file, check_loaded,
                     newest_config_snapshot)
from .mirror import STATE_NAME, open_state

_MEDIUM_RE = re.compile(r"^medium-(\d+)/")

#: DuckDB's memory limit while the chain is loaded into the new catalog, a record batch per transaction
#: (docs/reliability.md K8): the blocks written and read are not kept cached.
RESTORE_MEMORY_LIMIT = 64 << 20
#: Rows loaded per transaction: two record batches as ``db backup`` writes them (``snapshots.select_batches``).
#: DuckDB holds a transaction's rows until its commit and each commit checkpoints them: at a million mails one
#: transaction took 1,345 MB, 65,536 rows 301 MB (and 61 commits, ~0.35 s each), 131,072 rows 328 MB, 200,000
#: rows 466 MB (bench/RESULTS.md).
RESTORE_ROWS_PER_TRANSACTION = 131_072


@dataclass
class RestoreResult:
    home: str
    uuid: str
    fingerprint: str
    config_snapshot: str
    chain: list[str]
    refused_backups: list[dict] = field(default_factory=list)
    media: list[dict] = field(default_factory=list)
    messages: int = 0
    packs: int = 0
    packs_ok: int = 0
    losses: list[dict] = field(default_factory=list)
    lost_messages: int = 0
    warnings: list[str] = field(default_factory=list)
    #: warning text -> {"next_step": NextStep value, and the values its phrasing names} (phrased by the command line)
    warning_steps: dict[str, dict] = field(default_factory=dict)
    packs_not_in_catalog: int = 0
    #: how far the restored catalog falls short of the mirror's last run ({"mails", "packs", "batches"}; Q3),
    #: None when the mirror recorded no extent
    behind: dict | None = None
    #: the packs and stamp batches whose high-water marks are at DEST and that the restored catalog lacks (H2;
    #: quick verify's Q10 names the same): {"packs": [pack ids], "batches": [batch ids]}
    marked_not_in_catalog: dict = field(default_factory=lambda: {"packs": [], "batches": []})

    @property
    def status(self) -> str:
        return "restored with losses" if self.losses else "restored"

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"status": self.status}


def _find_chains(files: dict[str, int]) -> list[str]:
    """Backup files at DEST (relative names), newest first."""
    names = [n for n in files if "/" + BACKUP_DIR + "/" in "/" + n and n.endswith(".dbk")]
    return sorted(names, key=lambda n: n.rsplit("/", 1)[-1], reverse=True)


def _load_chain(dest: Storage, by_base: dict[str, str], newest: str, key: bytes, u: uuidlib.UUID,
                cache: dict[str, BackupContent | Exception]) -> list[BackupContent]:
    def load(rel: str) -> BackupContent:
        if rel not in cache:
            try:
                # checked a batch at a time; its rows are read again as the chain is applied (docs/reliability.md K8)
                cache[rel] = check_backup_file(dest, rel, key, u)
            except MailArchiveError as exc:
                cache[rel] = exc
        got = cache[rel]
        if isinstance(got, Exception):
            raise got
        return got

    last = load(newest)
    chain = []
    for base_name in last.meta["chain"][:-1]:
        rel = by_base.get(base_name)
        if rel is None:
            raise IntegrityError(f"catalog backup {base_name} (needed by {last.name}) is not at DEST")
        chain.append(load(rel))
    chain.append(last)
    return chain


def _nothing_to_restore(dest: Storage, files: dict[str, int], snaps: list[str], refusals: list[str],
                        u) -> MailArchiveError:
    """Why no config snapshot could be used: say what is missing at DEST before blaming the key. A place that
    holds no mirror at all is a usage error (the wrong place was given); a mirror that lacks parts is a finding."""
    where = dest.location
    if not files:
        return UsageError(f"{where} is empty or does not exist: not a mirror", next_step=NextStep.MIRROR_FIRST,
                          hint_args={"where": where})
    if not any(_MEDIUM_RE.match(n) for n in files) and STATE_NAME not in files:
        return UsageError(
            f"{where} holds no mirror (no {STATE_NAME}, no medium-<id>/ directories): is it the right location?")
    if not snaps:
        backups = "no catalog backup and " if not _find_chains(files) else ""
        head = f"{where} holds {backups}no config snapshot (medium-<id>/{CONFIG_DIR}/*.sealed)"
        return IntegrityError(
            f"{head}: the mirror was made before any catalog backup; back up the catalog and mirror it again",
            next_step=NextStep.BACKUP_BEFORE_MIRROR, hint_args={"head": head},
        )
    other = _labelled_archive(dest, files)
    if other is not None and other != str(u):  # the labels say whose mirror it is: the wrong key backup was given
        return WrongKeyError(
            f"{where} is the mirror of archive {other}, and this key backup is of archive {u}: give the key backup of "
            f"archive {other}")
    return IntegrityError(
        f"{where}: none of its {len(snaps)} config snapshot(s) opens with this key backup (archive {u}): "
        f"is this the mirror of that archive? " + "; ".join(refusals[:3])
    )


def _labelled_archive(dest: Storage, files: dict[str, int]) -> str | None:
    """The archive the medium labels at DEST name (unauthenticated: only to word an error), if they agree on one."""
    from toolkit.medium import LABEL_NAME, peek_label

    named = set()
    for name in files:
        if name.endswith("/" + LABEL_NAME) and _MEDIUM_RE.match(name):
            try:
                body = peek_label(dest.read(name)) or {}
            except MailArchiveError:
                continue
            if isinstance(body.get("archive"), str):
                named.add(body["archive"])
    return named.pop() if len(named) == 1 else None


def restore(
    dest: Storage,
    key_backup_text: str,
    password: bytes,
    home: Path,
    *,
    keep_locations: bool = False,
    smb_password: str | None = None,
    reporter=None,
) -> RestoreResult:
    home = Path(home).absolute()
    if Home(home).has_config():
        raise ArchiveExistsError(f"{home} already holds an archive", next_step=NextStep.RESTORE_INTO_NEW_HOME)
    if home.exists() and any(home.iterdir()):
        raise UsageError(f"{home} is not empty; restore into a new or empty directory")
    from toolkit.places import inside
    from toolkit.storage.location import parse_location

    mirror_at, home_at = parse_location(dest.location), parse_location(str(home))
    if inside(home_at, mirror_at) or inside(mirror_at, home_at):  # the restored media are at the mirror
        raise UsageError(f"restore: the new home {home} and the mirror {dest.location} lie one inside the other; "
                         "restore into a directory apart from the mirror (docs/media.md)")
    recovered = import_key_backup(key_backup_text, password)
    key, u = recovered.key, recovered.archive_uuid

    files = {e.name: e.size for e in dest.list("")}
    warnings: list[str] = []
    warning_steps: dict[str, dict] = {}

    config_name, config_text = _newest_config(dest, files, key, u, warnings)

    # -- catalog chain ----------------------------------------------------------------------------
    backups = _find_chains(files)
    chain, refused, by_base = _newest_chain(dest, backups, key, u)
    if chain is None:
        if not backups:
            raise IntegrityError(
                f"{dest.location}: the mirror holds no catalog backup (no medium-<id>/{BACKUP_DIR}/*.dbk)",
                next_step=NextStep.BACKUP_AND_MIRROR_OR_REBUILD,
            )
        raise IntegrityError(
            f"{dest.location}: no usable catalog backup (refused: {', '.join(r['backup'] for r in refused)})",
            next_step=NextStep.REBUILD_FROM_MEDIA,
        )
    state_warnings, state = _mirror_state_warnings(dest, files, key, u, chain[-1].name, by_base)
    warnings.extend(state_warnings)

    # -- build the home in a temporary sibling -------------------------------------------------------
    tmp = _fresh_sibling(home)
    try:
        config = Home(tmp).write_config_text(config_text)
        if config.uuid != str(u) or key_check(key, u) != config.key_check:
            raise WrongKeyError(f"the config snapshot {config_name} is not of the archive of this key backup ({u})")
        Home(tmp).write_key(key)
        dest_loc = parse_location(dest.location)
        media_info = _point_media_at_dest(config, files, dest_loc, keep_locations, warnings)
        _keep_ids_of_newer_media(config, files, warnings, warning_steps)
        Home(tmp).save_config(config)
        archive = Archive(tmp, config, key, None)
        try:
            if dest_loc.is_smb and smb_password and not keep_locations:
                _seal_smb_passwords(archive, smb_password)
            _load_catalog(archive, chain)
            archive.sync_media_table()
            result = RestoreResult(
                home=str(home), uuid=str(u), fingerprint=recovered.fingerprint, config_snapshot=config_name,
                chain=[f"{BACKUP_DIR}/{c.name}" for c in chain], refused_backups=refused, media=media_info, warnings=warnings,
                warning_steps=warning_steps,
            )
            _verify_packs(archive, result, reporter)
            _compare_with_mirror(archive, result, state, files)
        finally:
            archive.close()
        _move_into_place(tmp, home)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _keep_ids_of_newer_media(config, files: dict[str, int], warnings: list[str], warning_steps: dict[str, dict]) -> None:
    """P2/R6: media at DEST newer than the config snapshot (added after the newest backup) keep
    their IDs: the next medium ID goes above every ID seen at DEST, and the gap is reported."""
    at_dest = {int(mm.group(1)) for n in files if (mm := _MEDIUM_RE.match(n))}
    newer = sorted(at_dest - {m.id for m in config.media})
    if newer:
        config.next_medium_id = max(config.next_medium_id, max(newer) + 1)
        head = (f"the mirror holds medium {', '.join(map(str, newer))}, newer than the restored catalog backup: "
                f"their mail is not in the restored catalog")
        tail = f"new media get IDs from {config.next_medium_id} on, never theirs"
        warnings.append(f"{head} (a forced catalog rebuild adopts it from the media); {tail}")
        warning_steps[warnings[-1]] = {"next_step": NextStep.REBUILD_ADOPTS_NEWER_MEDIA.value, "head": head,
                                       "tail": tail}


def _newest_config(dest: Storage, files: dict[str, int], key: bytes, u: uuidlib.UUID,
                   warnings: list[str]) -> tuple[str, str]:
    """(name, text) of the newest config snapshot at DEST that opens; each newer one refused is noted in
    ``warnings``. IntegrityError, saying what DEST lacks, when none opens."""
    snaps = sorted((n for n in files if _MEDIUM_RE.match(n) and f"/{CONFIG_DIR}/" in n and n.endswith(".sealed")),
                   key=lambda n: n.rsplit("/", 1)[-1], reverse=True)
    config_name, config_text, refused_snaps = newest_config_snapshot(key, u, snaps, dest.read)
    warnings.extend(refused_snaps)
    if config_text is None:
        raise _nothing_to_restore(dest, files, snaps, warnings, u)
    return config_name, config_text


def _newest_chain(dest: Storage, backups: list[str], key: bytes,
                  u: uuidlib.UUID) -> tuple[list[BackupContent] | None, list[dict], dict[str, str]]:
    """The newest chain of ``backups`` (names at DEST, newest first) whose every file opens and checks (B6):
    (chain or None, the newer backups refused with their problem, backup file name → its name at DEST)."""
    by_base = {n.rsplit("/", 1)[-1]: n for n in sorted(backups)}
    cache: dict = {}
    refused: list[dict] = []
    for n in backups:
        try:
            return _load_chain(dest, by_base, n, key, u, cache), refused, by_base
        except MailArchiveError as exc:
            refused.append({"backup": f"{BACKUP_DIR}/{n.rsplit('/', 1)[-1]}", "problem": str(exc)})
    return None, refused, by_base


def _mirror_state_warnings(dest: Storage, files: dict[str, int], key: bytes, u: uuidlib.UUID, used: str,
                           by_base: dict[str, str]) -> tuple[list[str], dict | None]:
    """Q3: whether the mirror is behind what its state file claims, or its last run stopped early
    (``used``: the newest backup of the chain restored); with the opened state file, if any."""
    warnings: list[str] = []
    state = None
    if STATE_NAME in files:
        try:
            state = open_state(key, u, dest.read(STATE_NAME))
        except MailArchiveError as exc:
            warnings.append(f"{STATE_NAME} refused: {exc}")
    if state is None:
        warnings.append("the mirror has no state file: its last run did not complete; it may be older than the archive")
        return warnings, None
    newest_claimed = (state.get("newest_backup") or "").rsplit("/", 1)[-1] or None
    if newest_claimed and newest_claimed > used:
        behind = sum(1 for n in by_base if used < n <= newest_claimed)
        warnings.append(
            f"the mirror is {behind} backup(s) behind its own state: {newest_claimed} was mirrored, "
            f"{used} is the newest usable one"
        )
    newest_present = max(by_base) if by_base else None
    if newest_present and (newest_claimed is None or newest_present > newest_claimed):
        warnings.append(
            f"the mirror's state ({state.get('mirrored_at')}) is older than its newest backup {newest_present}: "
            f"the last mirror run did not complete"
        )
    return warnings, state


def _marks_at_dest(archive: Archive, files: dict[str, int]) -> dict[int, list[str]]:
    """The high-water marks (medium-relative names) at DEST of each live medium the new home points at."""
    by_medium: dict[int, list[str]] = {}
    for m in archive.config.media:
        if m.state in ("active", "standby", "deactivated"):  # the live media quick verify lists (Q10)
            prefix = f"medium-{m.id}/"
            by_medium[m.id] = [n[len(prefix):] for n in files if n.startswith(prefix + marks.MARKS_DIR + "/")]
    return by_medium


def _compare_with_mirror(archive: Archive, result: RestoreResult, state: dict | None, files: dict[str, int]) -> None:
    """H2/Q3, one warning: what the restored catalog lacks against the high-water marks at DEST and against the
    extent the mirror's last run recorded (``MIRROR.json``); when neither tells, the packs at DEST it does not list."""
    recorded = (state or {}).get("extent")
    with archive.catalog.reading() as con:
        if recorded:
            result.behind = short_of(catalog_extent(con), recorded)
        known = (media_rows.pack_ids(con), stamp_rows.stamped_batch_ids(con), purge_rows.purged_pack_ids(con))
    packs, batches = set(), set()
    for names in _marks_at_dest(archive, files).values():
        p, b = marks.lacking(names, *known)
        packs.update(p)
        batches.update(b)
    result.marked_not_in_catalog = {"packs": sorted(packs), "batches": sorted(batches)}
    marked = (f"the high-water marks at DEST name {len(packs)} pack(s) and {len(batches)} stamp batch(es) a later "
              f"catalog committed (quick verify's Q10 lists them)")
    if result.behind and any(result.behind.values()):
        text = (f"the restored catalog is {describe(result.behind)} behind the mirror's last run "
                f"({state.get('mirrored_at')}): they were committed after the newest usable catalog backup"
                + (f"; {marked}" if packs or batches else ""))
    elif packs or batches:
        text = f"the restored catalog is older than the mirror's media: {marked} after the newest usable catalog backup"
    elif result.packs_not_in_catalog:
        text = (f"{result.packs_not_in_catalog} pack(s) at DEST are newer than the restored catalog backup: "
                f"the mirror holds mail the backup does not list")
    else:
        return
    result.warnings.append(text)
    result.warning_steps[text] = {"next_step": NextStep.REBUILD_ADOPTS_PACKS.value}


def _point_media_at_dest(config, files: dict[str, int], dest_loc, keep_locations: bool,
                         warnings: list[str]) -> list[dict]:
    """Point each medium found at DEST to its folder there (unless ``keep_locations``); one entry per medium
    for the result, saying where it now is and whether DEST holds it."""
    media_info = []
    for m in config.media:
        here = f"medium-{m.id}/"
        present = any(n.startswith(here) for n in files)
        if not keep_locations and m.state != "removed":
            if present:
                m.location = f"{str(dest_loc).rstrip('/')}/medium-{m.id}"
                m.secret = None
            else:
                warnings.append(f"medium {m.id} is not at DEST; it keeps its old location {m.location}")
        media_info.append({"id": m.id, "state": m.state, "location": m.location, "at_dest": present})
    return media_info


def _fresh_sibling(home: Path) -> Path:
    """An empty directory beside ``home`` (mode 0700) to build the new home in; one left by an
    interrupted restore of this process ID is removed first."""
    tmp = home.with_name(f".{home.name}.restoring-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    os.chmod(tmp, 0o700)
    return tmp


def _move_into_place(tmp: Path, home: Path) -> None:
    """The finished home takes its name (``home``, if it exists, is an empty directory)."""
    if home.exists():
        home.rmdir()
    os.rename(tmp, home)


def _seal_smb_passwords(archive: Archive, smb_password: str) -> None:
    """Store ``smb_password``, sealed, for every medium now on the SMB share of DEST."""
    for m in archive.config.media:
        if m.location.startswith("smb://"):
            m.secret = archive.seal_secret(f"smb:{m.location}", smb_password)
    archive.save_config()


def _load_catalog(archive: Archive, chain: list[BackupContent]) -> None:
    """Create the new home's catalog and load the backup chain into it a record batch at a time, each batch a
    transaction of its own (one transaction held every row inserted, ~850 MB at a million mails: docs/reliability.md
    K8), then check the tables and record the chain's backups (on no medium of the new home). Each file's tag is
    checked as its last batch is read; the home is still the temporary sibling, renamed into place only after
    this and the pack check succeeded, and removed on any failure (docs/formats.md, catalog backups)."""
    archive.catalog.migrate()
    archive.catalog.use_memory_limit(RESTORE_MEMORY_LIMIT)
    try:
        with archive.catalog.transactions() as transaction:
            steps = apply_steps(chain)
            for group in _transactions_of(steps, RESTORE_ROWS_PER_TRANSACTION):
                with transaction() as con:
                    for step in group:
                        step(con)
            with transaction() as con:
                check_loaded(con, chain)
                for c in chain:
                    backup_rows.record_restored_backup(con, f"{BACKUP_DIR}/{c.name}", c.kind, c.meta["created"])
    finally:
        archive.catalog.use_memory_limit(None)


def _transactions_of(steps, rows: int):
    """The steps of :func:`apply_steps` in groups of about ``rows`` rows (a group ends with the step that reaches
    them), each group to be one transaction; made as they are consumed."""
    group, n = [], 0
    for k, step in steps:
        group.append(step)
        n += k
        if n >= rows:
            yield group
            group, n = [], 0
    if group:
        yield group


def _verify_packs(archive: Archive, result: RestoreResult, reporter=None) -> None:
    """Every pack the catalog lists: present at its medium, with its size and BLAKE3 checksum (Q2)."""
    with archive.catalog.reading() as con:
        packs = media_rows.packs_with_message_counts(con)
        result.messages = media_rows.message_count(con)
    result.packs = len(packs)
    known: dict[int, set[str]] = {}
    if reporter:
        reporter.start("restore-verify", len(packs), "packs")
    for pack_id, mid, name, size, sha, nmsg in packs:
        known.setdefault(mid, set()).add(name)
        problem = None
        try:
            storage = archive.storage(mid)
            st = storage.stat(name)
            if st is None:
                problem = "missing"
            elif st.size != size:
                problem = f"size {st.size}, expected {size}"
            elif storage.blake3(name)[0] != sha:
                problem = "checksum (BLAKE3) differs (corrupt)"
        except (StorageError, IntegrityError, MailArchiveError) as exc:
            problem = f"unreadable: {exc}"
        if problem:
            with archive.catalog.reading() as con:
                ids = media_rows.msg_ids_in_pack(con, pack_id)
            result.losses.append({"medium": mid, "pack": name, "problem": problem, "messages": nmsg, "msg_ids": ids})
            result.lost_messages += nmsg
        else:
            result.packs_ok += 1
        if reporter:
            reporter.advance("restore-verify", 1)
    if reporter:
        reporter.finish("restore-verify")
    # packs at DEST that the restored catalog does not know: mail newer than the backup (Q3); not those a
    # purge it records removed (a plain mirror keeps them)
    with archive.catalog.reading() as con:
        purged = purge_rows.purged_pack_ids(con)
    for m in archive.config.media:
        if m.state == "removed":
            continue
        try:
            storage = archive.storage(m.id)
        except MailArchiveError as exc:
            result.warnings.append(f"medium {m.id} cannot be opened: {exc}")
            if exc.next_step is not None:  # its next step, phrased by the command line
                result.warning_steps[result.warnings[-1]] = {"next_step": exc.next_step.value, **exc.hint_args}
            continue
        extra = [e.name for e in storage.list("packs") if e.name.endswith(".pack") and e.name not in known.get(m.id, set())
                 and e.name.rsplit("/", 1)[-1].removesuffix(".pack") not in purged]
        result.packs_not_in_catalog += len(extra)
