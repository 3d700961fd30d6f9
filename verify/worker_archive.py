"""The archive as a pack worker of ``verify --full`` sees it: its key, its uuid and its media (docs/verification.md,
"Full verification").

A worker reads packs and never the catalog, so it needs no :class:`toolkit.archive.Archive` (whose module loads
DuckDB: ~40 ms of imports). :class:`WorkerArchive` holds what the pack checks use (``key``, ``uuid``, ``config``,
``storage(medium_id)``) and loads only the modules those need; the command line can therefore fork its workers
before it loads DuckDB (:class:`verify.deep.EarlyWorkers`), so that they start sooner.

:meth:`WorkerArchive.storage` opens a live local medium with the same calls ``Archive.storage`` makes (the same
location, the same label read and check, so the same storage or the same error); for any other medium (an SMB
share, a removed or unknown medium, a medium without a label) it asks an ``Archive`` built on the same config and
key (loaded then), so every case that is not the plain local one behaves exactly as before.
"""
from __future__ import annotations

import uuid as uuidlib

from toolkit.medium import check_label, read_label
from toolkit.storage import open_storage, parse_location


class WorkerArchive:
    """``key``, ``uuid``, ``config``, ``home``, ``smb_password``, ``smb_encrypt`` and :meth:`storage`, as
    :class:`toolkit.archive.Archive` has them for an archive opened without a lock (see the module docstring)."""

    def __init__(self, home, config, key: bytes, smb_password: str | None, smb_encrypt: bool):
        self.home_files = home
        self.home = home.path
        self.config = config
        self.key = key
        self.uuid = uuidlib.UUID(config.uuid)
        self.smb_password = smb_password
        self.smb_encrypt = smb_encrypt
        self._storages: dict = {}
        self._archive = None

    def storage(self, medium_id: int):
        """The medium's storage, its label checked once per process (as ``Archive.storage``)."""
        got = self._storages.get(medium_id)
        if got is not None:
            return got
        m = self.config.medium(medium_id)
        if m is None or m.state == "removed" or parse_location(m.location).is_smb:
            return self.archive().storage(medium_id)
        s = open_storage(m.location, None, encrypt=self.smb_encrypt)
        data = read_label(s)
        if data is None:  # Archive.storage names what is missing
            s.close()
            return self.archive().storage(medium_id)
        check_label(data, self.key, self.uuid, medium_id, m.location)
        self._storages[medium_id] = s
        return s

    def archive(self):
        """The :class:`toolkit.archive.Archive` of this config and key (no lock, no catalog opened)."""
        if self._archive is None:
            from toolkit.archive import Archive

            self._archive = Archive(self.home_files, self.config, self.key, None, smb_password=self.smb_password,
                                    smb_encrypt=self.smb_encrypt)
        return self._archive
