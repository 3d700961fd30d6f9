"""One pack per task: read a batch of source items, prepare them, write and seal one pack (docs/architecture.md).

A :class:`PackTask` carries everything its worker needs, explicitly: the jobs
(mail bytes, or local files to read there), where the active medium is (and
its SMB password), and the archive key material that seals the records. No
environment, no global counter, no catalog: the task picks its own random pack
id, so a retried task (a worker lost mid-run) writes another pack and the
first attempt's file is at most an orphan pack that verify lists.

Within a task the worker pre-deduplicates by blob id (the same bytes are
written once). Every other dedup decision is the driver's, which gets back
:class:`PackResult`: per job the prepared keys and headers (no mail bytes)
and the pack's index rows as an Arrow table, with its BLAKE3 checksum in
``pack``. When the driver then decides that some of the task's mails are
duplicates, it copies the records of the new ones into its own pack and
removes the task's pack after the commit (:meth:`toolkit.ingest.Ingest._commit`):
a committed pack never holds a record the catalog does not reference.
"""
from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from .errors import MediumLabelError, ObjectExistsError
from .medium import check_label, read_label
from .pack import PACK_ID_SIZE, IndexEntry, PackInfo, PackWriter, pack_key, seal_record
from .prepare import DEFAULT_PARSE_LIMIT, NotMail, ReadFailure, Watchdog, prepare
from .remote_jobs import read_jobs
from .storage import Storage
from .storage.location import open_storage

ROW_SCHEMA = pa.schema([("blob_id", pa.binary(32)), ("offset", pa.int64()), ("length", pa.int64()),
                        ("size", pa.int64()), ("csize", pa.int64())])


@dataclass(frozen=True)
class MediumAccess:
    """Where a task writes: the medium's ID and location, and the SMB password when it is a share."""

    medium_id: int
    location: str
    password: str | None = None


@dataclass(frozen=True)
class Sealing:
    """The archive key material a worker seals records with (it leaves the driver: docs/architecture.md)."""

    archive_key: bytes
    archive_uuid: uuidlib.UUID


@dataclass
class PackTask:
    jobs: list                                # bytes, LocalFile, or batch jobs (toolkit.remote_jobs)
    medium: MediumAccess
    sealing: Sealing
    parse_limit: float | None = DEFAULT_PARSE_LIMIT
    pack_id: bytes | None = None              # the id its pack is published under (None: fresh random bytes)


@dataclass
class PackResult:
    """What a task hands back: rows, not bytes."""

    prepared: list                            # per job: Prepared (data/record dropped), ReadFailure or NotMail
    pack: PackInfo | None                     # the sealed pack (entries moved to ``rows``); None: nothing written
    rows: pa.Table                            # the pack's index: blob_id, offset, length, size, csize

    def entries(self) -> dict[str, IndexEntry]:
        """blob id (hex) -> its record's index entry in this task's pack."""
        cols = self.rows.to_pydict()
        return {b.hex(): IndexEntry(b, o, n, s, c) for b, o, n, s, c in
                zip(cols["blob_id"], cols["offset"], cols["length"], cols["size"], cols["csize"])}


_STORAGES: dict[tuple, Storage] = {}  # per worker process: one open storage per medium (label checked once)


def _storage(medium: MediumAccess, sealing: Sealing) -> Storage:
    key = (medium.medium_id, medium.location, sealing.archive_uuid)
    s = _STORAGES.get(key)
    if s is None:
        s = open_storage(medium.location, medium.password)
        data = read_label(s)
        if data is None:
            s.close()
            raise MediumLabelError(f"medium {medium.medium_id} at {medium.location} has no label where this worker runs")
        check_label(data, sealing.archive_key, sealing.archive_uuid, medium.medium_id, medium.location)
        _STORAGES[key] = s
    return s


def build_pack(task: PackTask, cancel: Callable[[], bool] | None = None, storage: Storage | None = None) -> PackResult:
    """Run one task: prepare every job, write each distinct blob once into a new pack, seal it create-only."""
    storage = storage or _storage(task.medium, task.sealing)
    seal = task.sealing
    pack_id = task.pack_id or os.urandom(PACK_ID_SIZE)
    key = pack_key(seal.archive_key, seal.archive_uuid, pack_id)
    writer: PackWriter | None = None
    written: set[str] = set()
    out: list = []
    try:
        with Watchdog.install(cancel) as dog:
            for raw in read_jobs(task.jobs):  # bytes, a local file, or batch jobs fetched here (toolkit.remote_jobs)
                if isinstance(raw, (ReadFailure, NotMail)):
                    out.append(raw)
                    continue
                p = prepare(raw, None, seal.archive_uuid, None, task.parse_limit, dog)
                if p.blob_id not in written:
                    data = p.data if p.data is not None else raw
                    record, csize = seal_record(key, seal.archive_uuid, bytes.fromhex(p.blob_id), data, check=False)
                    if writer is None:
                        writer = PackWriter(storage, seal.archive_key, seal.archive_uuid, pack_id=pack_id)
                    writer.add_sealed(bytes.fromhex(p.blob_id), record, len(data), csize)
                    written.add(p.blob_id)
                p.data = None  # rows, not bytes: the driver never needs them back
                out.append(p)
        info = writer.seal() if writer is not None else None
    except ObjectExistsError as exc:  # the name is taken by a file this task did not write (B5, C9)
        writer.abort()
        exc.pack_name, exc.mails = writer.name, writer.count  # kept through pickling (the exception's __dict__)
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return _result(out, info)


def _result(prepared: list, info: PackInfo | None) -> PackResult:
    entries = info.entries if info is not None else []
    rows = pa.table({"blob_id": [e.blob_id for e in entries], "offset": [e.offset for e in entries],
                     "length": [e.length for e in entries], "size": [e.size for e in entries],
                     "csize": [e.csize for e in entries]}, schema=ROW_SCHEMA)
    if info is not None:
        info = PackInfo(info.pack_id, info.name, info.bytes, info.records, info.blake3, [])
    return PackResult(prepared, info, rows)


__all__ = ["MediumAccess", "Sealing", "PackTask", "PackResult", "build_pack"]
