"""One pack per task: read a batch of source items, prepare them, write and seal one pack (docs/architecture.md).

A :class:`PackTask` carries everything its worker needs, explicitly: the jobs
(mail bytes, or where to read the mail there: local files, mbox regions, files on a share), where the active medium is (and
its SMB password), and the archive key material that seals the records. No
environment, no global counter, no catalog: the task picks its own random pack
id, so a retried task (a worker lost mid-run) writes another pack and the
first attempt's file is at most an orphan pack that verify lists.

Within a task the worker pre-deduplicates by blob id (the same bytes are
written once). Every other dedup decision is the driver's, which gets back
:class:`PackResult`: per job the prepared keys and headers (no mail bytes)
and the pack's index rows as an Arrow table, with its BLAKE3 checksum in
``pack``. A committed pack never holds a record the catalog does not reference;
two ways keep it so:

* **Two phases** (the local worker processes): the worker hands the prepared mails
  to the driver as soon as all are prepared (``decide``, an :class:`Asking`) and
  compresses them while the driver takes its dedup decisions; the driver answers
  which records to keep, and only those are sealed and written (the ones compressed
  before the answer wait in memory for it). Nothing is copied afterwards, nothing
  written twice, and a duplicate is no longer compressed once the answer is in.
* **One phase** (the first chunk, run inline, and Dask tasks, which cannot wait
  for the driver): every distinct record is written; when the driver then finds
  some of them duplicates, it copies the records of the new ones into its own
  pack and removes the task's pack after the commit
  (:meth:`toolkit.ingest.Ingest._commit`).
"""
from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import blob_ids
from .errors import MediumLabelError, ObjectExistsError
from .medium import check_label, read_label
from .pack import PACK_ID_SIZE, IndexEntry, NoncePool, PackInfo, PackWriter, compress
from .prepare import DEFAULT_PARSE_LIMIT, NotMail, PreparedBatch, ReadFailure, Trimmed, Watchdog, prepare
from .remote_jobs import read_jobs
from .storage import Storage
from .storage.location import open_storage

_ROW_COLUMNS = ("blob_id", "offset", "length", "size", "csize")


def _row_schema():
    """``ROW_SCHEMA``, the Arrow schema of a pack's index rows, made when first asked for: a worker process
    never imports pyarrow (its import cost ~0.05 CPU-s per worker); its rows travel as plain columns."""
    schema = globals().get("ROW_SCHEMA")
    if schema is None:
        import pyarrow as pa

        schema = pa.schema([("blob_id", pa.binary(32)), ("offset", pa.int64()), ("length", pa.int64()),
                            ("size", pa.int64()), ("csize", pa.int64())])
        globals()["ROW_SCHEMA"] = schema
    return schema


def __getattr__(name: str):
    if name == "ROW_SCHEMA":
        return _row_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class MediumAccess:
    """Where a task writes: the medium's ID and location, and for a share the SMB password and whether the
    connection asks for encryption (the driver's setting: a worker process does not share its defaults)."""

    medium_id: int
    location: str
    password: str | None = field(default=None, repr=False)
    encrypt: bool = True


@dataclass(frozen=True)
class Sealing:
    """The archive key material a worker seals records with (it leaves the driver: docs/architecture.md)."""

    archive_key: bytes
    archive_uuid: uuidlib.UUID


@dataclass
class PackTask:
    jobs: list                                # bytes, LocalFile, a job that reads itself (FileRegion, ShareFile), or batch jobs (toolkit.remote_jobs)
    medium: MediumAccess | None               # None (with ``sealing``): a task started ahead, sealed as answered (SealAs)
    sealing: Sealing | None
    parse_limit: float | None = DEFAULT_PARSE_LIMIT
    pack_id: bytes | None = None              # the id its pack is published under (None: fresh random bytes)
    two_phase: bool = False                   # the worker asks the driver which records to write (Asking)


class PackResult:
    """What a task hands back: rows, not bytes.

    ``prepared``: per job a Prepared (data/record dropped), ReadFailure or NotMail; empty after two phases
    (the question carried them). ``pack``: the sealed pack (entries moved to the rows), None when nothing
    was written. ``rows``: the pack's index as an Arrow table (blob_id, offset, length, size, csize). A
    worker builds it from plain columns (``columns``: five lists in that order) and sends those; the table
    is made where it is first asked for, in the driver (the worker needs no pyarrow, and the columns pickle
    at a fraction of the cost)."""

    __slots__ = ("prepared", "pack", "_rows", "_columns")

    def __init__(self, prepared: list, pack: PackInfo | None, rows=None, *, columns: tuple | None = None):
        self.prepared = prepared
        self.pack = pack
        self._rows = rows
        self._columns = columns if rows is None else None
        if rows is None and columns is None:
            raise ValueError("a PackResult needs its rows (an Arrow table) or their columns")

    @property
    def rows(self):
        if self._rows is None:
            import pyarrow as pa

            self._rows = pa.table(dict(zip(_ROW_COLUMNS, self._columns)), schema=_row_schema())
        return self._rows

    def index_columns(self) -> tuple:
        """The pack's index as five plain columns (blob ids as bytes, offsets, lengths, sizes, csizes): the
        worker's own lists when it sent those (the driver's index of a task needs no Arrow table built and
        read back), else the table's."""
        if self._columns is not None:
            return self._columns
        table = self._rows.to_pydict()
        return tuple(table[c] for c in _ROW_COLUMNS)

    def entries(self) -> dict[str, IndexEntry]:
        """blob id (hex) -> its record's index entry in this task's pack."""
        if self._columns is not None:
            cols = self._columns
        else:
            table = self._rows.to_pydict()
            cols = [table[c] for c in _ROW_COLUMNS]
        return {b.hex(): IndexEntry(b, o, n, s, c) for b, o, n, s, c in zip(*cols)}

    def __reduce__(self):
        if self._columns is not None:
            return _result_from_columns, (self.prepared, self.pack, self._columns)
        return PackResult, (self.prepared, self.pack, self._rows)

    def __repr__(self) -> str:
        return f"PackResult(prepared={len(self.prepared)} items, pack={self.pack!r})"


def _result_from_columns(prepared: list, pack: PackInfo | None, columns: tuple) -> PackResult:
    return PackResult(prepared, pack, columns=columns)


_STORAGES: dict[tuple, Storage] = {}  # per worker process: one open storage per medium (label checked once)


def _storage(medium: MediumAccess, sealing: Sealing) -> Storage:
    key = (medium.medium_id, medium.location, medium.encrypt, sealing.archive_uuid)
    s = _STORAGES.get(key)
    if s is None:
        s = open_storage(medium.location, medium.password, encrypt=medium.encrypt)
        data = read_label(s)
        if data is None:
            s.close()
            raise MediumLabelError(f"medium {medium.medium_id} at {medium.location} has no label where this worker runs")
        check_label(data, sealing.archive_key, sealing.archive_uuid, medium.medium_id, medium.location)
        _STORAGES[key] = s
    return s


@dataclass(frozen=True)
class SealAs:
    """The answer to a task started ahead (toolkit/early_tasks.py: no archive key, no medium when it was sent): the
    blob ids its pack keeps, and the key material and medium to seal and write them with. A plain set answers
    such a task only when it keeps nothing (the driver did not take it up): it then writes nothing."""

    keep: set
    sealing: Sealing
    medium: MediumAccess


class Asking:
    """The two-phase channel of one task (:func:`build_pack`): :meth:`ask` sends the question (the prepared mails
    and, per distinct blob id, the mail's size), :meth:`answer` gives the driver's answer (the blob ids the pack
    keeps, or a :class:`SealAs` for a task started ahead) once it is in, None before unless ``wait``."""

    def ask(self, prepared: list, sizes: dict[str, int]) -> None:
        raise NotImplementedError

    def answer(self, wait: bool) -> "set[str] | SealAs | None":
        raise NotImplementedError


class _Answered(Asking):
    """A plain ``decide(prepared, sizes)`` function as a channel: asked, it has answered."""

    def __init__(self, decide: Callable[[list, dict[str, int]], "set[str] | SealAs"]):
        self._decide, self._answer = decide, None

    def ask(self, prepared: list, sizes: dict[str, int]) -> None:
        self._answer = self._decide(prepared, sizes)

    def answer(self, wait: bool) -> "set[str] | SealAs | None":
        return self._answer


#: a two-phase task looks whether the driver has answered once per this many records it compresses (each look is
#: a system call; the driver takes a few ms to tens of ms per task, the task's records ~0.1 s to compress)
ANSWER_POLL = 16


def build_pack(task: PackTask, cancel: Callable[[], bool] | None = None, storage: Storage | None = None,
               decide: "Asking | Callable | None" = None) -> PackResult:
    """Run one task: prepare every job, write each distinct blob once into a new pack, seal it create-only.

    With ``decide`` (two phases, docs/architecture.md) the worker asks the driver as soon as every mail is prepared
    (read, hashed, its headers scanned), before any is compressed; it compresses them while the driver takes its
    dedup decisions, and once the answer is in writes only the records the driver keeps: no record of a
    duplicate is ever written, nor compressed once the answer has come, and the driver never copies one out of
    this pack. The records compressed before the answer wait in memory until it comes; later ones are written as
    they are compressed. A record is sealed where it is written, straight into the writer's block
    (:meth:`PackWriter.add_compressed`), in the order the mails were read.

    A task started ahead (``sealing`` None: toolkit/early_tasks.py) learns the key material and the medium from
    the answer (:class:`SealAs`), or keeps nothing."""
    seal = task.sealing
    if seal is not None:
        storage = storage or _storage(task.medium, seal)
    elif decide is None:
        raise ValueError("a pack task without key material must ask the driver (two phases)")
    asking = decide if decide is None or isinstance(decide, Asking) else _Answered(decide)
    pack_id = task.pack_id or os.urandom(PACK_ID_SIZE)
    writer: PackWriter | None = None
    written: set[str] = set()
    todo: list = []  # two phases: (blob id, mail bytes) of each distinct mail, in the order read
    out = PreparedBatch()  # pickles compactly on its way to the driver (toolkit/prepare.py)
    nonces = NoncePool()   # this task's own: one getrandom per 256 records, never shared with another process
    try:
        with Watchdog.install(cancel) as dog:
            # bytes, a local file, or batch jobs fetched here (toolkit.remote_jobs); with their SHA-256 when
            # they are hashed in batches
            for raw, digest in _hashed(read_jobs(task.jobs)):
                if isinstance(raw, (ReadFailure, NotMail)):
                    out.append(raw)
                    continue
                trimmed = raw if isinstance(raw, Trimmed) else None
                if trimmed is not None:
                    raw = trimmed.raw
                p = prepare(raw, None, None, None, task.parse_limit, dog, digest)  # (no key: nothing sealed here)
                if trimmed is not None:
                    p.source_note = trimmed._replace(raw=b"")
                if p.blob_id not in written:
                    written.add(p.blob_id)
                    data = p.data if p.data is not None else raw
                    if asking is None:  # one phase: compressed and sealed straight into the pack as read
                        if writer is None:
                            writer = PackWriter(storage, seal.archive_key, seal.archive_uuid, pack_id=pack_id,
                                                nonce_source=nonces)
                        writer.add_compressed(bytes.fromhex(p.blob_id), compress(data), len(data))
                    else:
                        todo.append((p.blob_id, data))
                p.data = None  # rows, not bytes: the driver never needs them back
                out.append(p)
            if asking is not None:
                writer = _kept_records(asking, out, todo, seal, storage, pack_id, nonces)
        info = writer.seal() if writer is not None else None
    except ObjectExistsError as exc:  # the name is taken by a file this task did not write (B5, C9)
        writer.abort()
        exc.pack_name, exc.mails = writer.name, writer.count  # kept through pickling (the exception's __dict__)
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    # two phases: the driver has the prepared mails from the question already; they do not travel twice
    return _result([] if asking is not None else out, info)


def _kept_records(asking: Asking, prepared: PreparedBatch, todo: list, seal: Sealing | None, storage: Storage | None,
                  pack_id: bytes, nonces: NoncePool) -> PackWriter | None:
    """A two-phase task's records: asks, compresses while the driver decides, writes the kept ones in the order
    read (:func:`build_pack`); returns the writer of the pack (None: nothing kept)."""
    asking.ask(prepared, {blob: len(data) for blob, data in todo})
    keep: set | None = None
    writer: PackWriter | None = None
    held: list[tuple[str, bytes, int]] = []  # compressed before the answer came: (blob id, compressed, size)

    def answered(answer) -> None:
        """Take the answer: the records kept, with the key material and medium of a task started ahead; the records
        compressed meanwhile are written (the kept ones) or dropped."""
        nonlocal keep, seal, storage, writer
        if isinstance(answer, SealAs):
            keep, seal = answer.keep, answer.sealing
            if keep and storage is None:
                storage = _storage(answer.medium, seal)
        else:
            keep = answer if seal is not None else set()  # a task started ahead and not taken up: nothing written
        for blob, compressed, size in held:
            if blob in keep:
                put(blob, compressed, size)
        held.clear()

    def put(blob: str, compressed, size: int) -> None:
        nonlocal writer
        if writer is None:
            writer = PackWriter(storage, seal.archive_key, seal.archive_uuid, pack_id=pack_id, nonce_source=nonces)
        writer.add_compressed(bytes.fromhex(blob), compressed, size)

    try:
        for i, (blob, data) in enumerate(todo):
            todo[i] = None  # the mail's bytes go with this step
            if keep is None and i % ANSWER_POLL == 0:
                answer = asking.answer(False)
                if answer is not None:
                    answered(answer)
            if keep is None:
                # held as a copy of its exact size: zstd's own result is its buffer of the worst-case size cut short,
                # and 1,600 of those held at once left as many gaps in the heap (a worker's resident set grew by a
                # fifth, and each task faulted in ~10,000 pages afresh: bench/RESULTS.md "Worker copies and page faults")
                held.append((blob, bytes(memoryview(compress(data))), len(data)))
            elif blob in keep:
                put(blob, compress(data), len(data))
        if keep is None:
            answered(asking.answer(True))
    except BaseException:
        if writer is not None:  # (build_pack aborts the writer it is given back; this one it never got)
            writer.abort()
        raise
    return writer


#: the mail a pack task reads ahead and hashes at once (multi-buffer SHA-256: toolkit/blob_ids.py); a few
#: MiB keep the engine's lanes busy on mails of unequal lengths (bench/bench_sha256mb.py)
HASH_BATCH_BYTES = 8 * 1024 * 1024


def _hashed(results) -> Iterator[tuple]:
    """Each read result with the SHA-256 of its mail's bytes, or None (a ReadFailure or NotMail; every
    result where hashlib is this process's engine: ``prepare`` hashes them one by one as before). With
    the multi-buffer engine the results are read ahead in batches, each hashed at once; a batch ends once it
    holds HASH_BATCH_BYTES of mail, or with the task: a worker holds at most that and one mail more than
    before (and never more than its task's mail)."""
    if not blob_ids.multi_buffer_chosen():
        for r in results:
            yield r, None
        return
    batch: list = []
    size = 0
    for r in results:
        mail = _mail_of(r)
        batch.append((r, mail))
        if mail is not None:
            size += len(mail)
            if size >= HASH_BATCH_BYTES:
                yield from _hash_batch(batch)
                batch, size = [], 0
    yield from _hash_batch(batch)


def _mail_of(result) -> bytes | None:
    """The mail's bytes of a read result (a Trimmed one's as cut), None for a ReadFailure or NotMail."""
    if isinstance(result, (ReadFailure, NotMail)):
        return None
    return result.raw if isinstance(result, Trimmed) else result


def _hash_batch(batch: list) -> Iterator[tuple]:
    digests = iter(blob_ids.sha256_many([mail for _, mail in batch if mail is not None]))
    for r, mail in batch:
        yield r, None if mail is None else next(digests)


def _result(prepared: list, info: PackInfo | None) -> PackResult:
    entries = info.entries if info is not None else []
    columns = ([e.blob_id for e in entries], [e.offset for e in entries], [e.length for e in entries],
               [e.size for e in entries], [e.csize for e in entries])
    if info is not None:
        info = PackInfo(info.pack_id, info.name, info.bytes, info.records, info.blake3, [])
    return PackResult(prepared, info, columns=columns)


__all__ = ["MediumAccess", "Sealing", "PackTask", "PackResult", "build_pack"]
