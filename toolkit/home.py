"""The archive home: the one owner of its layout and of the files in it.

A home is a directory (mode 0700) holding:

- ``archive.toml``: the config (uuid, key check, media registry, settings);
- ``key``: the 32-byte archive key, mode 0600, written by :meth:`Home.write_key` only;
- ``catalog.duckdb`` (+ ``.wal``): the encrypted catalog; ``catalog.duckdb.guard`` while a writer session can
  checkpoint and after one that was killed (named by :func:`toolkit.catalog.checkpoint_guard.guard_path`);
- ``catalog.duckdb.tmp/``: the writer's DuckDB temp files, while it writes what its memory limit does not hold (an
  import's checkpoints; encrypted; named by :attr:`toolkit.catalog.Catalog.temp_directory`; may stay empty; other
  processes spill outside the home, :mod:`toolkit.catalog.spill_dirs`);
- ``lock``: the writer lock (an flock; see :mod:`toolkit.lock`);
- ``init.incomplete``: present while an ``init`` has not finished (see :mod:`toolkit.archive`).
- ``verify-state.json``: which packs each full or sampled verify read, and when (see :mod:`verify.sampling`).
- ``home-place.json``: where this home lives (its real path and the archive uuid), written by ``init`` and by a
  writer that finds the home moved; a copy of the home carries the original's, which is how a writer on a copy
  tells it is one (see :mod:`toolkit.home_place`).

Init, key restore, restore and rebuild reach these files through a :class:`Home`;
nothing else builds their paths.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid as uuidlib
from pathlib import Path

from . import crypto
from .config import ArchiveConfig
from .errors import NextStep, WrongKeyError
from .lock import WriterLock
from .storage.local import _fsync_dir

CONFIG_NAME = "archive.toml"
KEY_NAME = "key"
CATALOG_NAME = "catalog.duckdb"
LOCK_NAME = "lock"
INIT_MARKER_NAME = "init.incomplete"
#: Where the home lives (toolkit/home_place.py; docs/formats.md "The home").
PLACE_NAME = "home-place.json"
#: Where ``key restore`` moves a key file that is not this archive's key.
DAMAGED_KEY_NAME = KEY_NAME + ".damaged"
#: Files an init writes (the marker apart): a home holding one of them but no config is damaged.
INIT_FILES = (KEY_NAME, CATALOG_NAME, CATALOG_NAME + ".wal", CATALOG_NAME + ".guard", CONFIG_NAME, PLACE_NAME)
#: Defaults ``init`` puts inside the home when not told otherwise.
DEFAULT_MEDIUM_NAME = "medium-1"
DEFAULT_KEY_BACKUP_NAME = "key-backup.txt"
DEFAULT_LOG_NAME = "mailarchive.log"
#: What other commands keep in the home: the mirror runs' outcomes, the IMAP exports' resume state.
MIRROR_STATUS_NAME = "mirror-status.json"
MIRROR_STATE_NAME = "MIRROR.json"  # a mirror's sealed state at its destination (media_tools/mirror.py)
EXPORT_STATE_NAME = "export-state"
#: Which packs each full or sampled verify read, and when (verify/sampling.py).
VERIFY_STATE_NAME = "verify-state.json"


def _key_check_input(archive_uuid: uuidlib.UUID) -> tuple[str, bytes]:
    return "medium-mac", b"key-check/" + archive_uuid.bytes


def key_check(key: bytes, archive_uuid: uuidlib.UUID) -> str:
    """The config's ``key_check``: a MAC under the key, so another archive's key is refused."""
    purpose, message = _key_check_input(archive_uuid)
    return crypto.mac(crypto.derive_key(key, archive_uuid, purpose), message)


def key_matches(key: bytes, archive_uuid: uuidlib.UUID, check: str) -> bool:
    """Is ``key`` the key whose key check is ``check`` (compared in constant time)?"""
    if len(key) != crypto.KEY_SIZE:
        return False
    purpose, message = _key_check_input(archive_uuid)
    return crypto.mac_ok(crypto.derive_key(key, archive_uuid, purpose), message, check)


def _file(name: str) -> property:
    """The path of the file ``name`` in the home, as a read-only attribute."""
    return property(lambda self: self.path / name, doc=f"HOME/{name}")


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) and flush it to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Home:
    """The files of one archive home (nothing is created or read until asked)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- the layout ----------------------------------------------------------------------------
    config_path = _file(CONFIG_NAME)
    key_path = _file(KEY_NAME)
    catalog_path = _file(CATALOG_NAME)
    lock_path = _file(LOCK_NAME)
    init_marker_path = _file(INIT_MARKER_NAME)
    place_path = _file(PLACE_NAME)
    default_medium = _file(DEFAULT_MEDIUM_NAME)
    default_key_backup = _file(DEFAULT_KEY_BACKUP_NAME)
    default_log_file = _file(DEFAULT_LOG_NAME)
    mirror_status_path = _file(MIRROR_STATUS_NAME)
    export_state_dir = _file(EXPORT_STATE_NAME)
    verify_state_path = _file(VERIFY_STATE_NAME)

    # -- state -----------------------------------------------------------------------------------
    def has_config(self) -> bool:
        return self.config_path.exists()

    def init_pending(self) -> bool:
        """An ``init`` of this home started and did not finish."""
        return self.init_marker_path.exists()

    def init_leftovers(self) -> list[str]:
        """The names of the files an init writes that are in the home now."""
        return [n for n in INIT_FILES if (self.path / n).exists()]

    def make_dir(self) -> bool:
        """Create the home (mode 0700) if needed; True when this call created it."""
        made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        return made

    # -- config and lock -------------------------------------------------------------------------
    def load_config(self) -> ArchiveConfig:
        return ArchiveConfig.load(self.config_path)

    def save_config(self, config: ArchiveConfig) -> None:
        config.save(self.config_path)

    def write_config_text(self, text: str) -> ArchiveConfig:
        """Put a config (e.g. a restored snapshot) into the home as it is, and load it."""
        self.config_path.write_text(text, encoding="utf-8")
        return self.load_config()

    def lock(self, wait: float = 0.0) -> WriterLock:
        """The writer lock, acquired (waiting up to ``wait`` seconds for another writer)."""
        return WriterLock(self.lock_path).acquire(wait)

    def remove_lock_file(self) -> None:
        with contextlib.suppress(OSError):
            self.lock_path.unlink()

    # -- where the home lives (toolkit/home_place.py decides what a change of place means) ----------
    def real_path(self) -> str:
        """The home's path with symlinks resolved: the place a record names."""
        return os.path.realpath(self.path)

    def read_place(self) -> tuple[str, str] | None:
        """The (archive uuid, real path) this home recorded, or None when there is no readable record."""
        try:
            info = json.loads(self.place_path.read_bytes())
            return str(info["archive"]), str(info["path"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_place(self, archive_uuid: str) -> None:
        """Record that the home of archive ``archive_uuid`` lives here (replaced whole, on the disk when done)."""
        tmp = self.place_path.with_name(f".{PLACE_NAME}.{os.getpid()}.tmp")
        record = {"archive": archive_uuid, "path": self.real_path(),
                  "recorded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_synced(tmp, json.dumps(record, indent=2).encode() + b"\n")
        os.replace(tmp, self.place_path)
        _fsync_dir(self.path)

    # -- the init marker -------------------------------------------------------------------------
    def write_init_marker(self, archive_uuid: str, medium: str) -> None:
        write_synced(self.init_marker_path, json.dumps({"uuid": archive_uuid, "medium": medium}).encode())

    def read_init_marker(self) -> tuple[str, str]:
        """The (uuid, medium location) an unfinished init recorded; ValueError/KeyError/OSError if unreadable."""
        info = json.loads(self.init_marker_path.read_bytes())
        return str(info["uuid"]), str(info["medium"])

    def clear_init_marker(self) -> None:
        self.init_marker_path.unlink()

    def remove_init_files(self) -> None:
        """Remove what an init writes into the home (the marker last: until then a rerun may clear)."""
        tmps = (*self.path.glob(f".{KEY_NAME}.*.tmp"), *self.path.glob(f".{PLACE_NAME}.*.tmp"))
        for path in (*tmps, *(self.path / n for n in (*INIT_FILES, INIT_MARKER_NAME))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- the key -----------------------------------------------------------------------------------
    def read_key_bytes(self) -> bytes:
        """The key file's bytes as they are (FileNotFoundError if there is none)."""
        return self.key_path.read_bytes()

    def read_key(self, archive_uuid: str, check: str) -> bytes:
        """The archive key, checked against the config's key check (WrongKeyError naming the file)."""
        try:
            key = self.read_key_bytes()
        except FileNotFoundError:
            raise WrongKeyError(
                f"{self.key_path} is missing", next_step=NextStep.RESTORE_KEY
            ) from None
        if not key_matches(key, uuidlib.UUID(archive_uuid), check):
            raise WrongKeyError(
                f"{self.key_path} is not the key of archive {archive_uuid}", next_step=NextStep.RESTORE_KEY
            )
        return key

    def write_key(self, key: bytes) -> None:
        """Write the key file: mode 0600 from its first byte, on the disk before it appears under its name.

        The one place a key file is written. It never replaces a key file that is there
        (FileExistsError); the key appears complete or not at all (a temporary file is
        linked to the name, so a crash leaves no half-written key).
        """
        if len(key) != crypto.KEY_SIZE:
            raise ValueError(f"an archive key is {crypto.KEY_SIZE} bytes, not {len(key)}")
        tmp = self.path / f".{KEY_NAME}.{os.getpid()}.tmp"  # a killed write's is removed by remove_init_files
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, self.key_path)  # fails if a key file is there: never overwritten
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(self.path)

    def install_key(self, key: bytes) -> str:
        """Put a recovered key in place: "already-present", "restored", or "replaced-damaged"
        (a different key file is moved to ``key.damaged`` first, never deleted)."""
        status = "restored"
        try:
            if self.read_key_bytes() == key:
                return "already-present"
            os.replace(self.key_path, self.path / DAMAGED_KEY_NAME)
            status = "replaced-damaged"
        except FileNotFoundError:
            pass
        self.write_key(key)
        return status
