"""An archive: its home (config, key, catalog, lock: a :class:`toolkit.home.Home`) and access to its media.

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

A writer's open checks where the home lives (``home-place.json``, :mod:`toolkit.home_place`): a copy of a
home whose media or mirror are still the original's is refused before anything is written.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import uuid as uuidlib
from pathlib import Path
from typing import Callable

from . import crypto, faults
from .catalog import Catalog
from .catalog.media_registry import replace_media_rows
from .config import ArchiveConfig, MediumEntry
from .errors import (
    ArchiveExistsError,
    CatalogError,
    MediumError,
    MediumLabelError,
    NextStep,
    NoArchiveError,
    UsageError,
)
from .home import CONFIG_NAME, INIT_MARKER_NAME, MIRROR_STATE_NAME, Home, key_check
from .home_place import check_place, refuse_copy_unlocked
from .lock import WriterLock
from .shared_lock import LockedStorage, SharedLock
from .medium import LABEL_NAME, check_label, label_new_medium, read_label, refuse_not_empty, strangers
from .storage import Storage, open_storage, parse_location
from .storage.location import SMB_DEFAULTS


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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


def _clear_failed_init(home: Home, smb_password: str | None) -> None:
    """The leftovers of an init that was killed: its label (if the leftover key made it) and its files."""
    try:
        uuid_text, old_medium = home.read_init_marker()
        old_uuid = uuidlib.UUID(uuid_text)
        old_key = home.read_key_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        old_key = b""
    if len(old_key) == crypto.KEY_SIZE:
        with contextlib.suppress(Exception):
            _remove_label(old_medium, old_key, old_uuid, smb_password)
    home.remove_init_files()


def _check_init_allowed(home: Home, medium_location: str) -> None:
    """Refuse an init into a home with an archive, or with a damaged one; check the location's syntax."""
    if home.has_config() and not home.init_pending():
        raise ArchiveExistsError(f"{home.path} already holds an archive", next_step=NextStep.CHOOSE_OTHER_HOME)
    parse_location(medium_location)  # usage errors before anything is created
    leftovers = home.init_leftovers()
    if leftovers and not home.init_pending():
        raise ArchiveExistsError(
            f"{home.path} holds {', '.join(leftovers)} but no {CONFIG_NAME}: a damaged archive, not a failed init",
            next_step=NextStep.RESTORE_HOME_OR_OTHER,
        )
    if not home.init_pending():
        _refuse_busy_home(home.path)


def _refuse_busy_home(path: Path) -> None:
    """An archive home is a directory of its own (docs/reliability.md P11): init makes it 0700 and puts the raw key
    there, so a directory that holds other files (``--archive ~``, a mail folder) is refused; a file system's clutter
    (``lost+found``) is allowed."""
    try:
        names = sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return  # made by init (a file in its way fails there, naming it)
    others = list(strangers(names))
    if others:
        raise UsageError(f"{path} is not empty (it holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): "
                         "an archive home is a directory of its own; choose a new or empty directory")


class Archive:
    """An open archive. ``smb_password``: the password for SMB media whose entry stores none
    (the CLI passes $MAILARCHIVE_SMB_PASSWORD; the core reads no environment)."""

    def __init__(self, home: Path | Home, config: ArchiveConfig, key: bytes, lock: WriterLock | None,
                 smb_password: str | None = None, smb_encrypt: bool | None = None):
        self.home_files = home if isinstance(home, Home) else Home(home)
        self.home = self.home_files.path
        self.config = config
        self.key = key
        self.uuid = uuidlib.UUID(config.uuid)
        self.lock = lock
        self.smb_password = smb_password
        self._smb_encrypt = smb_encrypt  # None: this process's default (toolkit.storage.configure_smb)
        self.catalog = Catalog(self.home_files.catalog_path, crypto.derive_key(key, self.uuid, "catalog"),
                               writer=lock is not None)
        #: what the open found about the home's place (moved, a copy), for the operator; None: nothing to say
        self.home_note: str | None = None
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
        h = Home(home)
        _check_init_allowed(h, medium_location)
        made_home = h.make_dir()
        key = key or crypto.new_archive_key()
        archive_uuid = uuidlib.uuid4()
        lock = h.lock()
        archive = None
        try:
            if h.init_pending():
                _clear_failed_init(h, smb_password)
            h.write_init_marker(str(archive_uuid), medium_location)
            h.write_key(key)
            config = ArchiveConfig(
                uuid=str(archive_uuid),
                name=name or h.path.name,
                created=_now(),
                key_check=key_check(key, archive_uuid),
            )
            archive = cls(h, config, key, lock, smb_password=smb_password)
            faults.hit("init_before_catalog")
            archive.catalog.create({"uuid": str(archive_uuid), "created": config.created})
            faults.hit("init_before_medium")
            archive.add_medium(medium_location, smb_password=smb_password, activate=True)
            h.write_place(str(archive_uuid))  # a copy of this home carries it: toolkit/home_place.py
            faults.hit("init_before_last_step")
            if last_step is not None:
                last_step(archive)
            h.clear_init_marker()
            return archive
        except BaseException:
            if archive is not None:
                archive.catalog.close()
                with contextlib.suppress(Exception):
                    _remove_label(medium_location, key, archive_uuid, smb_password)
            h.remove_init_files()
            lock.release()
            h.remove_lock_file()
            if made_home:  # everything in it is this init's (the default medium-1 too)
                shutil.rmtree(h.path, ignore_errors=True)
            raise

    @classmethod
    def open(cls, home: Path, writer: bool = False, lock_wait: float = 0.0,
             smb_password: str | None = None, repointing: bool = False) -> "Archive":
        """Open the archive at ``home``; ``writer``: with the writer lock. A writer on a copy of another home
        that shares its media or mirror is refused (HomeCopyError) unless ``repointing``: a command that
        points those places elsewhere (``media move``, ``media retarget``, ``config set``) and writes nothing
        into them (toolkit/home_place.py)."""
        h = Home(home)
        if not h.has_config():
            raise NoArchiveError(
                f"no archive at {h.path} (no {CONFIG_NAME}){_what_lies_there(h.path)}",
                next_step=NextStep.CHOOSE_OR_INIT_ARCHIVE,
            )
        if h.init_pending():
            raise NoArchiveError(
                f"the init of {h.path} did not finish ({INIT_MARKER_NAME} is there); run the same init again",
                next_step=NextStep.FINISH_INIT, hint_args={"path": h.path, "marker": INIT_MARKER_NAME},
            )
        if writer:
            refuse_copy_unlocked(h, repointing)  # a copy sharing the original's places: not even its lock is taken
        lock = h.lock(lock_wait) if writer else None
        try:
            config = h.load_config()
            key = h.read_key(config.uuid, config.key_check)
            archive = cls(h, config, key, lock, smb_password=smb_password)
            if not archive.catalog.path.exists():
                raise CatalogError(
                    f"{archive.catalog.path} is missing", next_step=NextStep.RESTORE_HOME_OR_REBUILD
                )
            archive.home_note = check_place(h, config, writer=writer, repointing=repointing)
            if writer:
                archive.catalog.open_writer()  # newer schema refused, migrations, dead runs closed: one session
            else:
                archive.catalog.refuse_newer_schema()
            return archive
        except BaseException:
            if lock:
                lock.release()
            raise

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
        self.home_files.save_config(self.config)

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

    @property
    def smb_encrypt(self) -> bool:
        """Whether this archive's SMB connections ask for encryption: the setting it was given, else the
        process default (``--smb-no-encrypt`` clears it). A worker process does not share the driver's
        defaults, so this value travels with every task that opens a share (docs/architecture.md)."""
        return bool(SMB_DEFAULTS["encrypt"]) if self._smb_encrypt is None else self._smb_encrypt

    def _open_location(self, m: MediumEntry, encrypt: bool | None = None, client_guid=None) -> Storage:
        password = None
        if parse_location(m.location).is_smb:
            password = self.open_secret(f"smb:{m.location}", m.secret) if m.secret else self.smb_password
        return open_storage(m.location, password, encrypt=self.smb_encrypt if encrypt is None else encrypt,
                            client_guid=client_guid)

    def medium_access(self, medium_id: int) -> tuple[str, str | None, bool]:
        """(location, SMB password or None, SMB encryption asked for) of a medium, for a worker that opens
        it itself (docs/architecture.md: the password and the connection settings travel with the task)."""
        m = self._medium_entry(medium_id)
        if m.state == "removed":
            raise MediumError(f"medium {medium_id} was removed")
        password = None
        if parse_location(m.location).is_smb:
            password = self.open_secret(f"smb:{m.location}", m.secret) if m.secret else self.smb_password
        return m.location, password, self.smb_encrypt

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
                f"medium {medium_id} at {m.location} has no {'MEDIUM.json'}: wrong location, or the medium was lost",
                next_step=NextStep.RETARGET_OR_RESTORE_MEDIUM,
            )
        check_label(data, self.key, self.uuid, medium_id, m.location)
        if self.lock is not None and parse_location(m.location).is_smb:
            # a writer on a share: other hosts may use it too (toolkit.shared_lock; taken at the first write)
            s = LockedStorage(s, SharedLock(s, lambda: self._open_location(m), f"{medium_id} ({m.location})"))
        self._storages[medium_id] = s
        return s

    def extra_connection(self, medium_id: int, sealed_only: bool = False) -> Storage:
        """Another, uncached connection to a medium whose label :meth:`storage` has checked.

        For transfers that run on several threads: an SMB storage serves one call at a
        time, so each thread gets its own. The caller closes it. ``sealed_only``: the caller
        moves nothing but sealed files (packs: every record is AES-GCM sealed), so an SMB
        session is signed but not asked for encryption (docs/media.md); a server that
        requires encryption still gets it. An SMB connection is another channel of the medium's client (the same
        client GUID: one server process serves them, as before each storage had a GUID of its own;
        docs/reliability.md C21).
        """
        s = self.storage(medium_id)
        extra = self._open_location(self._medium_entry(medium_id), encrypt=False if sealed_only else None,
                                    client_guid=getattr(s, "client_guid", None))
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
        from .places import refuse_overlap  # never in or around another medium or the mirror, nor around the home

        refuse_overlap(self, location, "media add", around=True, may_be_inside=("the archive home",))
        medium_id = self.config.next_medium_id
        secret = None
        if loc.is_smb:
            smb_password = smb_password or self.smb_password
            if smb_password is not None:
                secret = self.seal_secret(f"smb:{location}", smb_password)
        storage = open_storage(location, smb_password)
        try:
            from .storage.probe import probe

            refuse_not_empty(storage)  # before the probe writes there (docs/reliability.md P11)
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
        replace_media_rows(self.catalog, self.config.media)


def _what_lies_there(path: Path) -> str:
    """What a place given as a home is instead, when it is one of the archive's other places."""
    try:
        if (path / LABEL_NAME).is_file():
            return f": it is a storage medium ({LABEL_NAME}), not an archive home; give the home that holds {CONFIG_NAME}"
        if (path / MIRROR_STATE_NAME).is_file():
            return f": it is a mirror ({MIRROR_STATE_NAME}), not an archive home; a restore builds a home from it"
    except OSError:
        pass
    return ""
