"""An archive: its home (config, key, catalog, lock) and access to its media."""
from __future__ import annotations

import base64
import datetime as dt
import os
import uuid as uuidlib
from pathlib import Path

from . import crypto
from .catalog import Catalog
from .config import ArchiveConfig, MediumEntry
from .errors import (
    ArchiveExistsError,
    CatalogError,
    MediumError,
    MediumLabelError,
    NoArchiveError,
    WrongKeyError,
)
from .lock import WriterLock
from .medium import check_label, label_new_medium, read_label
from .storage import Storage, open_storage, parse_location

CONFIG_NAME = "archive.toml"
KEY_NAME = "key"
CATALOG_NAME = "catalog.duckdb"
LOCK_NAME = "lock"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
    ) -> "Archive":
        home = Path(home)
        if (home / CONFIG_NAME).exists():
            raise ArchiveExistsError(f"{home} already holds an archive; choose another --archive")
        parse_location(medium_location)  # usage errors before anything is created
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        key = key or crypto.new_archive_key()
        archive_uuid = uuidlib.uuid4()
        lock = WriterLock(home / LOCK_NAME).acquire()
        try:
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
            archive.catalog.create({"uuid": str(archive_uuid), "created": config.created})
            archive.add_medium(medium_location, smb_password=smb_password, activate=True)
            return archive
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, home: Path, writer: bool = False, lock_wait: float = 0.0) -> "Archive":
        home = Path(home)
        if not (home / CONFIG_NAME).exists():
            raise NoArchiveError(
                f"no archive at {home} (no {CONFIG_NAME}); pass --archive HOME, set MAILARCHIVE_HOME, or run `mailarchive init`"
            )
        lock = WriterLock(home / LOCK_NAME).acquire(lock_wait) if writer else None
        try:
            config = ArchiveConfig.load(home / CONFIG_NAME)
            key = cls._load_key(home, config)
            archive = cls(home, config, key, lock)
            if not archive.catalog.path.exists():
                raise CatalogError(
                    f"{archive.catalog.path} is missing; restore the home from a mirror (`mailarchive restore`) "
                    f"or rebuild the catalog from the media (`mailarchive db rebuild`)"
                )
            archive.catalog.refuse_newer_schema()
            if writer:
                archive.catalog.migrate()
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
                f"{key_path} is missing; recover it with `mailarchive key restore --from BACKUP`"
            ) from None
        if len(key) != crypto.KEY_SIZE or not crypto.mac_ok(
            crypto.derive_key(key, uuidlib.UUID(config.uuid), "medium-mac"),
            b"key-check/" + uuidlib.UUID(config.uuid).bytes,
            config.key_check,
        ):
            raise WrongKeyError(
                f"{key_path} is not the key of archive {config.uuid}; recover it with `mailarchive key restore --from BACKUP`"
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
            raise MediumError(f"there is no medium {medium_id}; `mailarchive media list` shows the media")
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
        self._storages[medium_id] = s
        return s

    def extra_connection(self, medium_id: int) -> Storage:
        """Another, uncached connection to a medium whose label :meth:`storage` has checked.

        For transfers that run on several threads: an SMB storage serves one call at a
        time, so each thread gets its own. The caller closes it.
        """
        self.storage(medium_id)
        return self._open_location(self._medium_entry(medium_id))

    def active_medium_id(self) -> int:
        m = self.config.active_medium
        if m is None:
            raise MediumError("no medium is active; `mailarchive media activate ID`")
        return m.id

    def add_medium(self, location: str, smb_password: str | None = None, activate: bool = False) -> MediumEntry:
        """Register and label a new medium with the next never-used ID."""
        loc = parse_location(location)
        location = str(loc)
        if any(m.location == location and m.state != "removed" for m in self.config.media):
            raise MediumError(f"{location} is already registered as a medium; `mailarchive media list`")
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
