"""An archive: its home (config, key, catalog, lock) and access to its media.

``init`` writes ``init.incomplete`` (JSON: archive uuid, medium location) into
the home before anything else and removes it as its very last step, after
``archive.toml``. A failed ``init`` removes what it made (key, catalog, medium
label, the marker, and the home if it made it); one that was killed leaves the
marker, and the next ``init`` of that home takes it as leave to clear the
leftovers (the medium label only if it is the one the leftover key made) and
start again. No command opens a home while the marker is there (so nothing is
archived into an archive whose init may still be cleared). A home with a key or
catalog but neither ``archive.toml`` nor the marker is refused: that is a
damaged archive, not a failed init.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import uuid as uuidlib
from pathlib import Path
from typing import Callable

from . import crypto, faults
from .catalog import Catalog
from .config import ArchiveConfig, MediumEntry
from .errors import (
    ArchiveExistsError,
    CatalogError,
    MediumError,
    MediumLabelError,
    NextStep,
    NoArchiveError,
    WrongKeyError,
)
from .lock import WriterLock
from .shared_lock import LockedStorage, SharedLock
from .medium import LABEL_NAME, check_label, label_new_medium, read_label
from .storage import Storage, open_storage, parse_location

CONFIG_NAME = "archive.toml"
KEY_NAME = "key"
CATALOG_NAME = "catalog.duckdb"
LOCK_NAME = "lock"
INIT_MARKER_NAME = "init.incomplete"
_INIT_LEFTOVERS = (KEY_NAME, CATALOG_NAME, CATALOG_NAME + ".wal", CONFIG_NAME)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _remove_init_files(home: Path) -> None:
    """Remove what an init writes into the home (the marker last: until then a rerun may clear)."""
    for name in (*_INIT_LEFTOVERS, INIT_MARKER_NAME):
        with contextlib.suppress(FileNotFoundError):
            (home / name).unlink()


def _remove_label(location: str, key: bytes, archive_uuid: uuidlib.UUID, smb_password: str | None) -> None:
    """Delete medium 1's label if it is the one this key and archive made (nothing else)."""
    storage = open_storage(location, smb_password)
    try:
        data = read_label(storage)
        if data is None:
            return
        try:
            check_label(data, key, archive_uuid, 1, location)
        except MediumError:
            return
        storage.delete(LABEL_NAME)
    finally:
        storage.close()


def _clear_failed_init(home: Path, marker: Path, smb_password: str | None) -> None:
    """The leftovers of an init that was killed: its label (if the leftover key made it) and its files."""
    try:
        info = json.loads(marker.read_bytes())
        old_uuid, old_medium = uuidlib.UUID(info["uuid"]), str(info["medium"])
        old_key = (home / KEY_NAME).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        old_key = b""
    if len(old_key) == crypto.KEY_SIZE:
        with contextlib.suppress(Exception):
            _remove_label(old_medium, old_key, old_uuid, smb_password)
    _remove_init_files(home)


def key_check(key: bytes, archive_uuid: uuidlib.UUID) -> str:
    return crypto.mac(crypto.derive_key(key, archive_uuid, "medium-mac"), b"key-check/" + archive_uuid.bytes)


class Archive:
    def __init__(self, home: Path, config: ArchiveConfig, key: bytes, lock: WriterLock | None):
        self.home = Path(home)
        self.config = config
        self.key = key
        self.uuid = uuidlib.UUID(config.uuid)
        self.lock = lock
        self.catalog = Catalog(self.home / CATALOG_NAME, crypto.derive_key(key, self.uuid, "catalog"))
        self._storages: dict[int, Storage] = {}

    # -- creation and opening -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        home: Path,
        medium_location: str,
        smb_password: str | None = None,
        name: str | None = None,
        key: bytes | None = None,
        last_step: Callable[["Archive"], None] | None = None,
    ) -> "Archive":
        """Make a new archive; ``last_step`` (e.g. writing the key backup) is part of it:
        if it fails, the archive is removed again like any other failed init."""
        home = Path(home)
        marker = home / INIT_MARKER_NAME
        if (home / CONFIG_NAME).exists() and not marker.exists():
            raise ArchiveExistsError(f"{home} already holds an archive; choose another --archive")
        parse_location(medium_location)  # usage errors before anything is created
        leftovers = [n for n in _INIT_LEFTOVERS if (home / n).exists()]
        if leftovers and not marker.exists():
            raise ArchiveExistsError(
                f"{home} holds {', '.join(leftovers)} but no {CONFIG_NAME}: a damaged archive, not a failed init",
                next_step=NextStep.RESTORE_HOME_OR_OTHER,
            )
        made_home = not home.exists()
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        key = key or crypto.new_archive_key()
        archive_uuid = uuidlib.uuid4()
        lock = WriterLock(home / LOCK_NAME).acquire()
        archive = None
        try:
            if marker.exists():
                _clear_failed_init(home, marker, smb_password)
            _write_synced(marker, json.dumps({"uuid": str(archive_uuid), "medium": medium_location}).encode())
            key_path = home / KEY_NAME
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            config = ArchiveConfig(
                uuid=str(archive_uuid),
                name=name or home.name,
                created=_now(),
                key_check=key_check(key, archive_uuid),
            )
            archive = cls(home, config, key, lock)
            faults.hit("init_before_catalog")
            archive.catalog.create({"uuid": str(archive_uuid), "created": config.created})
            faults.hit("init_before_medium")
            archive.add_medium(medium_location, smb_password=smb_password, activate=True)
            faults.hit("init_before_last_step")
            if last_step is not None:
                last_step(archive)
            marker.unlink()
            return archive
        except BaseException:
            if archive is not None:
                archive.catalog.close()
                with contextlib.suppress(Exception):
                    _remove_label(medium_location, key, archive_uuid, smb_password)
            _remove_init_files(home)
            lock.release()
            with contextlib.suppress(OSError):
                (home / LOCK_NAME).unlink()
            if made_home:  # everything in it is this init's (the default medium-1 too)
                shutil.rmtree(home, ignore_errors=True)
            raise

    @classmethod
    def open(cls, home: Path, writer: bool = False, lock_wait: float = 0.0) -> "Archive":
        home = Path(home)
        if not (home / CONFIG_NAME).exists():
            raise NoArchiveError(
                f"no archive at {home} (no {CONFIG_NAME})", next_step=NextStep.CHOOSE_OR_INIT_ARCHIVE
            )
        if (home / INIT_MARKER_NAME).exists():
            raise NoArchiveError(
                f"`mailarchive init` of {home} did not finish ({INIT_MARKER_NAME} is there); run the same init again"
            )
        lock = WriterLock(home / LOCK_NAME).acquire(lock_wait) if writer else None
        try:
            config = ArchiveConfig.load(home / CONFIG_NAME)
            key = cls._load_key(home, config)
            archive = cls(home, config, key, lock)
            if not archive.catalog.path.exists():
                raise CatalogError(
                    f"{archive.catalog.path} is missing", next_step=NextStep.RESTORE_HOME_OR_REBUILD
                )
            archive.catalog.refuse_newer_schema()
            if writer:
                archive.catalog.migrate()
                archive.catalog.close_dead_runs()  # we hold the lock: no run is live
            return archive
        except BaseException:
            if lock:
                lock.release()
            raise

    @staticmethod
    def _load_key(home: Path, config: ArchiveConfig) -> bytes:
        key_path = home / KEY_NAME
        try:
            key = key_path.read_bytes()
        except FileNotFoundError:
            raise WrongKeyError(
                f"{key_path} is missing", next_step=NextStep.RESTORE_KEY
            ) from None
        if len(key) != crypto.KEY_SIZE or not crypto.mac_ok(
            crypto.derive_key(key, uuidlib.UUID(config.uuid), "medium-mac"),
            b"key-check/" + uuidlib.UUID(config.uuid).bytes,
            config.key_check,
        ):
            raise WrongKeyError(
                f"{key_path} is not the key of archive {config.uuid}", next_step=NextStep.RESTORE_KEY
            )
        return key

    def close(self) -> None:
        for s in self._storages.values():
            s.close()
        self._storages.clear()
        self.catalog.close()
        if self.lock:
            self.lock.release()
            self.lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save_config(self) -> None:
        self.config.save(self.home / CONFIG_NAME)

    @property
    def fingerprint(self) -> str:
        return crypto.fingerprint(self.key, self.uuid)

    # -- secrets -------------------------------------------------------------------------------
    def seal_secret(self, purpose: str, secret: str) -> str:
        k = crypto.derive_key(self.key, self.uuid, "config")
        return base64.b64encode(crypto.seal_blob(k, secret.encode(), purpose.encode())).decode()

    def open_secret(self, purpose: str, sealed: str) -> str:
        k = crypto.derive_key(self.key, self.uuid, "config")
        return crypto.open_blob(k, base64.b64decode(sealed), purpose.encode(), what=f"stored secret {purpose}").decode()

    # -- media -----------------------------------------------------------------------------------
    def _medium_entry(self, medium_id: int) -> MediumEntry:
        m = self.config.medium(medium_id)
        if m is None:
            raise MediumError(f"there is no medium {medium_id}", next_step=NextStep.LIST_MEDIA)
        return m

    def _open_location(self, m: MediumEntry) -> Storage:
        password = None
        if parse_location(m.location).is_smb:
            password = (
                self.open_secret(f"smb:{m.location}", m.secret) if m.secret else os.environ.get("MAILARCHIVE_SMB_PASSWORD")
            )
        return open_storage(m.location, password)

    def storage(self, medium_id: int) -> Storage:
        """The medium's storage, its label checked once per process."""
        if medium_id in self._storages:
            return self._storages[medium_id]
        m = self._medium_entry(medium_id)
        if m.state == "removed":
            raise MediumError(f"medium {medium_id} was removed")
        s = self._open_location(m)
        data = read_label(s)
        if data is None:
            s.close()
            raise MediumLabelError(
                f"medium {medium_id} at {m.location} has no {'MEDIUM.json'}: wrong location, or the medium was lost; "
                f"point it at its files with `media retarget` or restore from the mirror"
            )
        check_label(data, self.key, self.uuid, medium_id, m.location)
        if self.lock is not None and parse_location(m.location).is_smb:
            # a writer on a share: other hosts may use it too (toolkit.shared_lock; taken at the first write)
            s = LockedStorage(s, SharedLock(s, lambda: self._open_location(m), f"{medium_id} ({m.location})"))
        self._storages[medium_id] = s
        return s

    def extra_connection(self, medium_id: int) -> Storage:
        """Another, uncached connection to a medium whose label :meth:`storage` has checked.

        For transfers that run on several threads: an SMB storage serves one call at a
        time, so each thread gets its own. The caller closes it.
        """
        s = self.storage(medium_id)
        extra = self._open_location(self._medium_entry(medium_id))
        if isinstance(s, LockedStorage):  # its writes check the same shared lock
            extra = LockedStorage(extra, s.lock, owns_lock=False)
        return extra

    def active_medium_id(self) -> int:
        m = self.config.active_medium
        if m is None:
            raise MediumError("no medium is active", next_step=NextStep.ACTIVATE_MEDIUM)
        return m.id

    def add_medium(self, location: str, smb_password: str | None = None, activate: bool = False) -> MediumEntry:
        """Register and label a new medium with the next never-used ID."""
        loc = parse_location(location)
        location = str(loc)
        if any(m.location == location and m.state != "removed" for m in self.config.media):
            raise MediumError(f"{location} is already registered as a medium", next_step=NextStep.SEE_MEDIA)
        medium_id = self.config.next_medium_id
        secret = None
        if loc.is_smb:
            smb_password = smb_password or os.environ.get("MAILARCHIVE_SMB_PASSWORD")
            if smb_password is not None:
                secret = self.seal_secret(f"smb:{location}", smb_password)
        storage = open_storage(location, smb_password)
        try:
            from .storage.probe import probe

            probe(storage)
            label_new_medium(storage, self.key, self.uuid, medium_id)
        finally:
            storage.close()
        entry = MediumEntry(id=medium_id, location=location, state="standby", secret=secret, created=_now())
        self.config.media.append(entry)
        self.config.next_medium_id = medium_id + 1
        if activate:
            for m in self.config.media:
                if m.state == "active":
                    m.state = "standby"
            entry.state = "active"
        self.save_config()
        self.sync_media_table()
        return entry

    def sync_media_table(self) -> None:
        """Mirror the registry into the catalog's media table (for SQL) and log the change."""
        with self.catalog.writing() as con:
            con.execute("DELETE FROM media")
            for m in self.config.media:
                kind = "smb" if m.location.startswith("smb://") else "local"
                con.execute(
                    "INSERT INTO media VALUES (?, ?, ?, ?, ?, ?)",
                    [m.id, m.location, kind, m.state, m.alias_of, m.created or None],
                )
