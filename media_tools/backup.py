"""Sealed catalog backups on the active medium (docs/formats.md, docs/reliability.md B6, E3).

File: ``db-backups/<UTC ts>-full.dbk`` or ``-incr.dbk``, create-only. Content::

    seal_blob(derive_key(key, uuid, "backup"), zstd(payload), b"db-backup:" + file name)
    payload = b"MADBK001" || u32 meta length || meta JSON || part_0 || part_1 || ...

Each part is one Arrow IPC stream (rows of one table); ``meta["parts"]``
names the table, the kind (``rows`` or ``patch``) and the byte length of
each. ``meta["tables"]`` records for every catalog table its columns, the
live row count and content checksum at backup time, the high-water mark of
its key column, and how this backup holds it.

Incremental scheme (correct under UPDATEs): per table, compared with the
previous verified backup (the base),

* ``unchanged`` — same count and checksum as the base: nothing stored;
* ``append``    — the rows up to the base's high-water mark are exactly the
  base's rows (same count and checksum): only rows above the mark are stored
  (messages, recipients, sightings, run_errors, events, envelopes);
* ``patch``     — as append, but some mutable columns of older rows changed
  (messages.batch_id/id_conflict after stamping, envelopes.batch_id): new
  rows plus (key, mutable columns) of all older rows are stored;
* ``full``      — anything else (media, packs after consolidation, runs,
  cursors, stamp_batches, ...): the whole table is stored.

A restore applies the full backup, then each incremental of the chain in
order, and must arrive at the recorded counts and checksums of the last one.

Neither a file nor its payload is held whole (docs/reliability.md K8): it is
compressed and sealed straight into the medium's temp file
(``crypto.SealWriter``), read back and checked front to back
(``crypto.BlobReader``), and a restore reads its rows a record batch at a
time; nothing read is taken before the file's tag verified (docs/formats.md,
sealed objects).

The content checksum of a row set is ``(count, sum of md5_number_lower of
the row's canonical text)``; duplicates do not cancel out and row order does
not matter. It is computed with SQL over the live catalog and, on reading a
backup back, over the deserialised Arrow rows: a backup only counts (row in
``db_backups``, verified) after both agree for every part.

Config snapshots: ``config/<UTC ts>.sealed`` beside the backups, written
with every backup, a sealed copy of ``archive.toml``. Format v2::

    seal_blob(derive_key(key, uuid, "config"), archive.toml bytes,
              b"config-snapshot/v2\x00" + b"config/<UTC ts>.sealed")

The associated data binds the snapshot to its own name, and so to the time
in it: bytes of an older snapshot copied under a newer name (or moved
between names in any way) fail authentication, so an attacker with write
access to a medium or mirror cannot make restore take an old config as the
newest. Only the medium-relative name is bound; a mirror's
``medium-<id>/`` prefix is stripped before checking. Restore and mirror use
the newest snapshot that verifies and name each newer one they refused.
Format v1 (context ``b"config-snapshot"``, no name) is still read, as a
last resort when no v2 snapshot verifies, with a warning.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import json
import struct
from dataclasses import dataclass, field
from uuid import UUID

import pyarrow as pa
import zstandard

from toolkit import crypto, hashes
from toolkit.archive import Archive
from toolkit.errors import CatalogError, IntegrityError, MailArchiveError, NextStep, ObjectMissingError, UsageError
from toolkit.process_guard import give_back_freed_memory
from toolkit.storage import Storage
from toolkit.catalog import backups as backup_rows, snapshots

BACKUP_DIR = "db-backups"
CONFIG_DIR = "config"
PAYLOAD_MAGIC = b"MADBK001"
FORMAT = 1


# --------------------------------------------------------------- file format


def backup_key(archive_key: bytes, archive_uuid: UUID) -> bytes:
    return crypto.derive_key(archive_key, archive_uuid, "backup")


def _context(name: str) -> bytes:
    return b"db-backup:" + name.rsplit("/", 1)[-1].encode()


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def encode_backup(archive_key: bytes, archive_uuid: UUID, name: str, meta: dict, parts: list[tuple[dict, pa.Table]]) -> bytes:
    blobs = []
    meta = dict(meta, parts=[])
    for info, table in parts:
        data = _ipc(table)
        meta["parts"].append({**info, "length": len(data)})
        blobs.append(data)
    head = json.dumps(meta, sort_keys=True).encode()
    payload = PAYLOAD_MAGIC + struct.pack(">I", len(head)) + head + b"".join(blobs)
    compressed = zstandard.ZstdCompressor(level=3).compress(payload)
    return crypto.seal_blob(backup_key(archive_key, archive_uuid), compressed, _context(name))


class _Counted:
    """A file-like sink that counts what it is given and hands it on to ``write``."""

    def __init__(self, write):
        self._write = write
        self.length = 0
        self.closed = False

    def write(self, data) -> int:
        n = len(data)
        self._write(data)
        self.length += n
        return n

    def flush(self) -> None:
        pass


@dataclass
class StreamedPart:
    """One part of a backup made by :func:`build_backup_streamed`: its IPC stream held zstd-compressed (level 1)
    and the length it has uncompressed (the ``length`` of the file's header)."""
    info: dict
    packed: bytes
    length: int


def _streamed_part(reader: pa.RecordBatchReader, checksum: "snapshots.RowChecksum | None" = None) -> tuple[bytes, int, int]:
    """(compressed IPC stream, its uncompressed length, rows) of the batches of ``reader``."""
    out = io.BytesIO()
    z = zstandard.ZstdCompressor(level=1).compressobj()
    sink = _Counted(lambda b: out.write(z.compress(bytes(b))))
    rows = 0
    with pa.ipc.new_stream(sink, reader.schema) as w:
        for batch in reader:
            w.write_batch(batch)
            rows += batch.num_rows
    out.write(z.flush())
    return out.getvalue(), sink.length, rows


def _compress_into(meta: dict, parts: list[StreamedPart], sink) -> None:
    """The payload of the parts (magic, header, the parts' IPC streams) compressed as one zstd frame into
    ``sink.write``; each part is freed once written."""
    meta = dict(meta, parts=[{**p.info, "length": p.length} for p in parts])
    head = json.dumps(meta, sort_keys=True).encode()
    total = 12 + len(head) + sum(p.length for p in parts)
    zc = zstandard.ZstdCompressor(level=3)
    with zc.stream_writer(sink, size=total, closefd=False) as w:
        w.write(PAYLOAD_MAGIC + struct.pack(">I", len(head)) + head)
        while parts:
            part = parts.pop(0)
            for chunk in zstandard.ZstdDecompressor().read_to_iter(part.packed, read_size=1 << 20, write_size=1 << 20):
                w.write(chunk)
            del part
            give_back_freed_memory()


def seal_streamed(archive_key: bytes, archive_uuid: UUID, name: str, meta: dict, parts: list[StreamedPart],
                  write, nonce_source=None) -> int:
    """The sealed backup file of :func:`encode_backup` from parts made a batch at a time, handed to ``write``
    a piece at a time as it is compressed and sealed (``crypto.SealWriter``: the bytes of ``seal_blob``), so
    neither the payload nor the file is held whole (docs/reliability.md K8); returns the file's length."""
    extra = {} if nonce_source is None else {"nonce_source": nonce_source}
    seal = crypto.SealWriter(backup_key(archive_key, archive_uuid), _context(name), write, **extra)
    _compress_into(meta, parts, seal)
    return seal.finish()


def encode_streamed(archive_key: bytes, archive_uuid: UUID, name: str, meta: dict, parts: list[StreamedPart],
                    nonce_source=None) -> bytes:
    """:func:`seal_streamed` into bytes (the file of :func:`encode_backup`)."""
    out = io.BytesIO()
    seal_streamed(archive_key, archive_uuid, name, meta, parts, out.write, nonce_source)
    return out.getvalue()


@dataclass
class BackupContent:
    name: str
    meta: dict
    parts: list[tuple[dict, pa.Table]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    def part_batches(self):
        """(info, rows as an Arrow table) of each part, in order."""
        yield from self.parts


def decode_backup(archive_key: bytes, archive_uuid: UUID, name: str, sealed: bytes) -> BackupContent:
    """Open a backup file; IntegrityError for anything truncated, changed or foreign."""
    what = f"catalog backup {name}"
    compressed = crypto.open_blob(backup_key(archive_key, archive_uuid), sealed, _context(name), what=what)
    try:
        payload = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=1 << 34)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: does not decompress ({exc})") from None
    reader = io.BytesIO(payload)
    meta = _read_header(reader.read, what, archive_uuid)
    content = BackupContent(name=name.rsplit("/", 1)[-1], meta=meta)
    for info in meta["parts"]:
        data = reader.read(info["length"])
        if len(data) != info["length"]:
            raise IntegrityError(f"{what}: part {info['table']} is truncated")
        try:
            table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
        except (pa.ArrowInvalid, OSError) as exc:  # garbage raises either
            raise IntegrityError(f"{what}: part {info['table']} does not parse ({exc})") from None
        content.parts.append((info, table))
    return content


def _read_header(read, what: str, archive_uuid: UUID) -> dict:
    """The payload's header, read with ``read(n)`` from its start, checked to be this archive's and of a known format."""
    start = read(12)
    if not start.startswith(PAYLOAD_MAGIC) or len(start) < 12:
        raise IntegrityError(f"{what}: not a catalog backup payload")
    (hlen,) = struct.unpack(">I", start[8:12])
    try:
        meta = json.loads(read(hlen))
    except ValueError:
        raise IntegrityError(f"{what}: damaged header") from None
    if meta.get("archive") != str(archive_uuid):
        raise IntegrityError(f"{what}: belongs to archive {meta.get('archive')}, not {archive_uuid}")
    if meta.get("format", 0) > FORMAT:
        raise CatalogError(f"{what}: backup format v{meta['format']} needs a newer mailarchive-toolkit")
    return meta


def _checksum_differs(short: str, info: dict, got) -> IntegrityError:
    return IntegrityError(
        f"catalog backup {short}: part {info['table']}/{info['kind']} holds {got[0]} rows "
        f"with checksum {got[1]}, expected {info['checksum'][0]} rows with {info['checksum'][1]}"
    )


def check_content(content: BackupContent) -> None:
    """Every part's rows have the count and checksum recorded from the live catalog (B6)."""
    got_all = snapshots.row_checksums([(table, info["columns"]) for info, table in content.parts])
    for (info, _table), got in zip(content.parts, got_all):
        if got != info["checksum"]:
            raise _checksum_differs(content.name, info, got)


class _Exact:
    """A reader of the next ``n`` bytes of ``src`` (a part of the payload), for Arrow's IPC reader."""

    def __init__(self, src, n: int):
        self._src, self.left, self.closed = src, n, False

    def read(self, size: int = -1) -> bytes:
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self._src.read(want) if want else b""
        self.left -= len(data)
        return data

    def readable(self) -> bool:
        return True


def open_sealed(archive_key: bytes, archive_uuid: UUID, name: str, read) -> crypto.BlobReader:
    """The backup file read front to back with ``read(n)``, opened a piece at a time: authentic only after its
    ``verify()`` (``crypto.BlobReader``)."""
    return crypto.BlobReader(backup_key(archive_key, archive_uuid), read, _context(name), what=f"catalog backup {name}")


def check_opened(opened: crypto.BlobReader, archive_uuid: UUID, name: str) -> dict:
    """:func:`check_payload` of an opened file as it is decrypted, then its tag: the header is returned only once
    the tag verified. A content error met before the end counts only if the tag verifies (a changed file is
    refused as not authentic, as :func:`decode_backup` refuses it)."""
    try:
        meta = check_payload(opened, archive_uuid, name)
    except Exception:
        opened.verify()  # the authentication failure, if any, is the finding
        raise
    opened.verify()
    return meta


def check_sealed(archive_key: bytes, archive_uuid: UUID, name: str, sealed: bytes) -> dict:
    """:func:`decode_backup` and :func:`check_content` of a file a batch at a time: the payload is decrypted and
    decompressed as it is read and each part's rows are checksummed per record batch, never held whole
    (docs/reliability.md K8). Returns the file's header; IntegrityError as those two give it."""
    return check_opened(open_sealed(archive_key, archive_uuid, name, io.BytesIO(sealed).read), archive_uuid, name)


def check_payload(compressed, archive_uuid: UUID, name: str) -> dict:
    """:func:`check_sealed` of the opened (compressed) payload: bytes, or a reader of them (unverified while it
    is read: the caller verifies its source before it takes the result, :func:`check_opened`)."""
    what = f"catalog backup {name}"
    try:
        src = zstandard.ZstdDecompressor().stream_reader(compressed, read_size=1 << 20)
        meta = _read_header(src.read, what, archive_uuid)
        short = name.rsplit("/", 1)[-1]
        for info in meta["parts"]:
            part = _Exact(src, info["length"])
            sums = snapshots.RowChecksum(info["columns"])
            for batch in _part_batches(part, info, what):
                sums.add(batch)
            got = sums.result()
            if got != info["checksum"]:
                raise _checksum_differs(short, info, got)
            give_back_freed_memory()
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: does not decompress ({exc})") from None
    return meta


def _part_batches(part: "_Exact", info: dict, what: str):
    """The record batches of one part's IPC stream; IntegrityError for a part truncated or that does not parse."""
    try:
        yield from pa.ipc.open_stream(pa.PythonFile(part, mode="r"))
    except (pa.ArrowInvalid, OSError) as exc:  # garbage raises either
        while part.read(1 << 20):
            pass
        if part.left:  # the payload ended inside the part
            raise IntegrityError(f"{what}: part {info['table']} is truncated") from None
        raise IntegrityError(f"{what}: part {info['table']} does not parse ({exc})") from None
    if part.left:
        raise IntegrityError(f"{what}: part {info['table']} is truncated")


class _Hashed:
    """A reader that hands on what ``f`` reads and checksums it (BLAKE3) as it goes."""

    def __init__(self, f):
        self._f, self.hasher, self.length = f, hashes.checksum_hasher(), 0

    def read(self, n: int) -> bytes:
        data = self._f.read(n)
        self.hasher.update(data)
        self.length += len(data)
        return data

    def rest(self) -> None:
        while self.read(1 << 20):
            pass


def _check_back(archive: Archive, storage: Storage, name: str, size: int, sha: str) -> dict:
    """The header of the file just written, read back once front to back: its bytes are checksummed, decrypted,
    decompressed and its rows checksummed as they come (never held whole, docs/reliability.md K8); the result
    counts only once the tag verified and the bytes are those written (that failure is named first)."""
    with storage.open_read(name) as f:
        back = _Hashed(f)
        try:
            meta = check_opened(open_sealed(archive.key, archive.uuid, name, back.read), archive.uuid, name)
            failure = None
        except MailArchiveError as exc:
            failure = exc
        back.rest()
    if back.length != size or back.hasher.hexdigest() != sha:
        raise IntegrityError(f"catalog backup {name}: the bytes read back differ from those written")
    if failure is not None:
        raise failure
    return meta


def read_backup(storage: Storage, name: str, archive_key: bytes, archive_uuid: UUID) -> BackupContent:
    content = decode_backup(archive_key, archive_uuid, name, storage.read(name))
    check_content(content)
    return content


@dataclass
class BackupFile(BackupContent):
    """A backup file checked a batch at a time (:func:`check_backup_file`) whose parts are read again from the
    file, a record batch at a time, as a restore applies them (:meth:`part_batches`)."""
    storage: Storage | None = None
    path: str = ""
    archive_key: bytes = b""
    archive_uuid: UUID | None = None

    def part_batches(self):
        """(info, rows as an Arrow table) of each record batch of each part, in order, opening the file
        again; the file's tag is checked after its last part (IntegrityError then, and the caller's rows from it
        must not be kept: a restore removes the home it was building)."""
        what = f"catalog backup {self.name}"
        with self.storage.open_read(self.path) as f:
            opened = open_sealed(self.archive_key, self.archive_uuid, self.path, f.read)
            try:
                src = zstandard.ZstdDecompressor().stream_reader(opened, read_size=1 << 20)
                if _read_header(src.read, what, self.archive_uuid) != self.meta:
                    raise IntegrityError(f"{what}: changed since it was checked")
                for info in self.meta["parts"]:
                    for batch in _part_batches(_Exact(src, info["length"]), info, what):
                        yield info, pa.Table.from_batches([batch])
            except zstandard.ZstdError as exc:
                opened.verify()
                raise IntegrityError(f"{what}: does not decompress ({exc})") from None
            except Exception:
                opened.verify()
                raise
            opened.verify()


def check_backup_file(storage: Storage, path: str, archive_key: bytes, archive_uuid: UUID) -> BackupFile:
    """:func:`read_backup` without the rows: the file at ``path`` is opened, decompressed and checked a batch at a
    time (:func:`check_opened`); the rows are read again when the backup is applied (:class:`BackupFile`)."""
    with storage.open_read(path) as f:
        meta = check_opened(open_sealed(archive_key, archive_uuid, path, f.read), archive_uuid, path)
    return BackupFile(name=path.rsplit("/", 1)[-1], meta=meta, storage=storage, path=path,
                      archive_key=archive_key, archive_uuid=archive_uuid)


# --------------------------------------------------------------- creating


@dataclass
class BackupResult:
    name: str
    kind: str
    medium_id: int
    bytes: int
    blake3: str
    chain: list[str]
    tables: dict[str, dict]
    config_snapshot: str
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "medium": self.medium_id, "bytes": self.bytes,
            "blake3": self.blake3, "chain": self.chain, "config_snapshot": self.config_snapshot,
            "deleted": self.deleted,
            "tables": {t: {"mode": v["mode"], "rows": v["stored"], "total": v["checksum"][0]} for t, v in self.tables.items()},
        }


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%S.%fZ")


def backup_name(now: dt.datetime, kind: str) -> str:
    return f"{BACKUP_DIR}/{_stamp(now)}-{'full' if kind == 'full' else 'incr'}.dbk"


def verified_backups(archive: Archive) -> list[dict]:
    """Rows of db_backups that verified, oldest first (meta parsed). Names are medium-relative (db-backups/...)."""
    with archive.catalog.reading() as con:
        rows = backup_rows.verified_backups(con)
    out = []
    for name, medium_id, kind, created, nbytes, sha, meta in rows:
        out.append({"name": name, "medium_id": medium_id, "kind": kind, "created": created, "bytes": nbytes,
                    "blake3": sha, "meta": json.loads(meta) if meta else None})
    return out


def _plan_table(con, table: str, columns, base: dict | None, full: bool) -> tuple[dict, list[dict]]:
    """The table's record in meta, and the parts to store (each names its columns and its row filter)."""
    key = snapshots.APPEND_KEYS.get(table)
    names = [c for c, _ in columns]
    total = snapshots.checksum(con, table, columns)
    rec = {"columns": columns, "checksum": total, "key": key, "hw": None, "mutable": None}
    if key and key in names:
        rec["hw"] = snapshots.high_water(con, table, key)
    mutable = [c for c in snapshots.MUTABLE.get(table, ()) if c in names]
    if mutable:
        immutable_cols = [c for c in columns if c[0] not in mutable]
        rec["mutable"] = mutable
        rec["immutable_checksum"] = snapshots.checksum(con, table, immutable_cols)

    def whole():
        rec["mode"] = "full"
        return [{"table": table, "kind": "rows", "columns": columns, "where": None}]

    bt = (base or {}).get("tables", {}).get(table)
    if full or bt is None or bt["columns"] != columns:
        return rec, whole()
    if bt["checksum"] == total:
        rec["mode"] = "unchanged"
        return rec, []
    if not key or key not in names:
        return rec, whole()
    base_hw = bt["hw"] if bt["hw"] is not None else -1
    old = snapshots.rows_up_to(key, base_hw)
    rows_part = {"table": table, "kind": "rows", "columns": columns, "where": snapshots.rows_above(key, base_hw)}
    if snapshots.checksum(con, table, columns, old) == bt["checksum"]:
        rec["mode"] = "append"
        return rec, [rows_part]
    if mutable and bt.get("immutable_checksum") is not None:
        immutable_cols = [c for c in columns if c[0] not in mutable]
        if snapshots.checksum(con, table, immutable_cols, old) == bt["immutable_checksum"]:
            rec["mode"] = "patch"
            pcols = [c for c in columns if c[0] == key or c[0] in mutable]
            patch = {"table": table, "kind": "patch", "columns": pcols, "where": old, "key": key}
            return rec, [rows_part, patch]
    return rec, whole()


def _backup_meta(archive: Archive, kind: str, now: dt.datetime, base: dict | None) -> tuple[str, dict]:
    """A new backup's name and its meta before the tables are read (an incremental one names its base and chain)."""
    name = backup_name(now, kind)
    meta = {
        "format": FORMAT, "archive": str(archive.uuid), "name": name.rsplit("/", 1)[-1], "kind": kind,
        "created": now.isoformat(), "base": None, "chain": [], "tables": {},
    }
    if kind == "incremental":
        meta["base"] = base["name"]
        meta["chain"] = list(base["meta"]["chain"])
    meta["chain"].append(meta["name"])
    return name, meta


def _build(archive: Archive, kind: str, now: dt.datetime, base: dict | None, read_part) -> tuple[str, dict, list]:
    """Snapshot the catalog in one read session: (name, meta, parts), each part as ``read_part(con, table, info)``
    gives it with its row count."""
    name, meta = _backup_meta(archive, kind, now, base)
    parts: list = []
    with archive.catalog.reading() as con:
        meta["schema"] = snapshots.applied_migrations(con)
        for table, columns in sorted(snapshots.catalog_tables(con).items()):
            rec, wanted = _plan_table(con, table, columns, base["meta"] if base else None, kind == "full")
            rec["stored"] = 0
            for info in wanted:
                part, n = read_part(con, table, info)
                info["checksum"] = snapshots.checksum(con, table, info["columns"], info["where"])
                rec["stored"] += n
                parts.append(part)
            meta["tables"][table] = rec
    return name, meta, parts


def build_backup(archive: Archive, kind: str, now: dt.datetime, base: dict | None) -> tuple[str, dict, list[tuple[dict, pa.Table]]]:
    """Snapshot the catalog in one read session: (name, meta, parts), each table part whole in Arrow."""
    def whole(con, table: str, info: dict):
        rows = snapshots.select_rows(con, table, [c for c, _ in info["columns"]], info["where"])
        return (info, rows), rows.num_rows
    return _build(archive, kind, now, base, whole)


def build_backup_streamed(archive: Archive, kind: str, now: dt.datetime, base: dict | None) -> tuple[str, dict, list[StreamedPart]]:
    """:func:`build_backup` a record batch at a time: each part's rows are read from DuckDB in batches and
    written into its compressed IPC stream as they come, so no table is held whole (docs/reliability.md K8)."""
    def streamed(con, table: str, info: dict):
        reader = snapshots.select_batches(con, table, [c for c, _ in info["columns"]], info["where"])
        packed, length, n = _streamed_part(reader)
        del reader
        give_back_freed_memory()
        return StreamedPart(info, packed, length), n
    return _build(archive, kind, now, base, streamed)


CONFIG_SNAPSHOT_CONTEXT = b"config-snapshot/v2\x00"
LEGACY_CONFIG_SNAPSHOT_CONTEXT = b"config-snapshot"


def _config_context(name: str) -> bytes:
    """The associated data of snapshot ``name`` (medium-relative or with a mirror's ``medium-<id>/`` prefix)."""
    return CONFIG_SNAPSHOT_CONTEXT + f"{CONFIG_DIR}/{name.rsplit('/', 1)[-1]}".encode("utf-8")


def snapshot_config(archive: Archive, storage: Storage, now: dt.datetime) -> str:
    """A sealed copy of archive.toml next to the backups (for restore), bound to its name and time."""
    name = f"{CONFIG_DIR}/{_stamp(now)}.sealed"
    k = crypto.derive_key(archive.key, archive.uuid, "config")
    storage.put(name, crypto.seal_blob(k, archive.config.dumps().encode(), _config_context(name)))
    return name


def open_config_snapshot(archive_key: bytes, archive_uuid: UUID, sealed: bytes, name: str, *, legacy: bool = False) -> str:
    """The config text of snapshot ``name``; IntegrityError if it was changed or copied under another name.

    ``legacy`` reads the old unbound format v1 instead (callers try it only when no v2 snapshot verifies).
    """
    k = crypto.derive_key(archive_key, archive_uuid, "config")
    context = LEGACY_CONFIG_SNAPSHOT_CONTEXT if legacy else _config_context(name)
    try:
        return crypto.open_blob(k, sealed, context, what=f"config snapshot {name}").decode("utf-8")
    except IntegrityError as exc:
        if legacy or "authentication failed" not in str(exc):
            raise
        raise IntegrityError(
            f"config snapshot {name}: authentication failed (changed, copied under another name, or of another archive)"
        ) from None


def newest_config_snapshot(archive_key: bytes, archive_uuid: UUID, names, read) -> tuple[str | None, str | None, list[str]]:
    """(name, config text, warnings) of the newest snapshot among ``names`` that verifies.

    ``read(name)`` gives a snapshot's bytes. Newest is by the time in the file
    name. Each refused snapshot newer than the one chosen is named in a
    warning; a v1 snapshot is used only when no v2 one verifies.
    """
    ordered = sorted(names, key=lambda n: n.rsplit("/", 1)[-1], reverse=True)
    warnings: list[str] = []
    blobs: dict[str, bytes] = {}
    for n in ordered:
        try:
            blobs[n] = read(n)
            return n, open_config_snapshot(archive_key, archive_uuid, blobs[n], n), warnings
        except MailArchiveError as exc:
            warnings.append(f"config snapshot {n} refused, skipped for an older one: {exc}")
    for n in ordered:
        if n not in blobs:
            continue
        try:
            text = open_config_snapshot(archive_key, archive_uuid, blobs[n], n, legacy=True)
        except MailArchiveError:
            continue
        warnings.append(f"config snapshot {n} is in the old format that is not bound to its name; used because no newer-format snapshot verified")
        return n, text, warnings
    return None, None, warnings


#: DuckDB's memory limit while a backup reads the catalog (docs/reliability.md K8): its scans and checksums of
#: every table need little at a time, but DuckDB's default keeps each block it read cached until the session
#: ends (~110 MB more at a million mails, beside the compressed parts the backup holds).
BACKUP_MEMORY_LIMIT = 64 << 20


def _build_bounded(archive: Archive, kind: str, now: dt.datetime, base: dict | None) -> tuple[str, dict, list[StreamedPart]]:
    """:func:`build_backup_streamed` with the catalog's sessions held to :data:`BACKUP_MEMORY_LIMIT`."""
    before = archive.catalog.memory_limit
    archive.catalog.use_memory_limit(BACKUP_MEMORY_LIMIT)
    try:
        return build_backup_streamed(archive, kind, now, base)
    finally:
        archive.catalog.use_memory_limit(before)


def _write_sealed(archive: Archive, storage: Storage, name: str, meta: dict, parts: list[StreamedPart]) -> tuple[int, str]:
    """Compress and seal the backup straight into its file on the medium, create-only and atomic like
    ``Storage.put`` (a temp file, flushed and fsynced, renamed; removed on any failure): (bytes, BLAKE3 hex)."""
    hasher = hashes.checksum_hasher()
    w = storage.open_write(name)
    try:
        def write(data) -> None:
            w.write(data)
            hasher.update(data)
        size = seal_streamed(archive.key, archive.uuid, name, meta, parts, write)
        w.commit()
    except BaseException:
        w.abort()
        raise
    return size, hasher.hexdigest()


def create_backup(archive: Archive, kind: str | None = None, keep: int | None = None, now: dt.datetime | None = None) -> BackupResult:
    """Write, read back and verify one backup, record it, snapshot the config, then apply ``keep``.

    ``kind``: "full", "incremental", or None (incremental when a verified
    backup exists, else full). Nothing is recorded for a backup that fails to
    write (ENOSPC: the temp file is removed) or to verify (the file is deleted).
    """
    if archive.lock is None:
        raise RuntimeError("create_backup needs the archive opened as writer")
    if kind not in (None, "full", "incremental"):
        raise UsageError(f"unknown backup kind {kind!r}")
    if keep is not None and keep < 1:
        raise UsageError("--keep needs at least 1")
    now = now or dt.datetime.now(dt.timezone.utc)
    history = [b for b in verified_backups(archive) if b["meta"]]
    base = history[-1] if history else None
    if kind is None:
        kind = "incremental" if base else "full"
    if kind == "incremental" and base is None:
        raise UsageError("there is no verified backup to build an incremental on", next_step=NextStep.FULL_DB_BACKUP)
    medium_id = archive.active_medium_id()
    storage = archive.storage(medium_id)
    # a batch at a time and checked back the same way: the memory is bounded by the compressed parts, not by
    # the catalog's rows nor by the file (docs/reliability.md K8)
    name, meta, parts = _build_bounded(archive, kind, now, base)
    size, sha = _write_sealed(archive, storage, name, meta, parts)  # StorageFullError etc. propagate
    del parts
    give_back_freed_memory()
    try:
        read_meta = _check_back(archive, storage, name, size, sha)
        if read_meta["tables"].keys() != meta["tables"].keys():
            raise IntegrityError(f"catalog backup {name}: the tables read back differ")
    except MailArchiveError:
        try:
            storage.delete(name)
        except MailArchiveError:
            pass
        raise
    config_name = snapshot_config(archive, storage, now)
    record = {k: v for k, v in meta.items() if k != "parts"}
    with archive.catalog.writing() as con:
        backup_rows.record_backup(con, name, medium_id, kind, now, size, sha, json.dumps(record))
    result = BackupResult(
        name=name, kind=kind, medium_id=medium_id, bytes=size, blake3=sha,
        chain=[f"{BACKUP_DIR}/{n}" for n in meta["chain"]],
        tables=meta["tables"], config_snapshot=config_name,
    )
    if keep is not None:
        result.deleted = apply_retention(archive, keep)
    return result


def apply_retention(archive: Archive, keep: int) -> list[str]:
    """Delete backups beyond the newest ``keep``, but only those older than the newest verified full (E3)."""
    history = verified_backups(archive)
    fulls = [b for b in history if b["kind"] == "full"]
    if not fulls:
        return []
    newest_full = fulls[-1]["name"]
    doomed = [b for b in history[: max(0, len(history) - keep)] if b["name"] < newest_full]
    deleted = []
    for b in doomed:
        try:
            archive.storage(b["medium_id"]).delete(b["name"])
        except ObjectMissingError:
            pass
        with archive.catalog.writing() as con:
            backup_rows.forget_backup(con, b["name"])
        deleted.append(b["name"])
    return deleted


# --------------------------------------------------------------- applying


def apply_steps(chain: list[BackupContent]):
    """Loading a full backup and its incrementals into an empty, migrated catalog, as steps: (rows, a function of
    a read-write session), each small enough to be part of a transaction of bounded size (at most a record batch
    of a part; ``rows`` is how many it loads), to be run in order, then :func:`check_loaded`.

    A :class:`BackupFile` is read as its steps are made and its tag is checked before the step after its last
    (IntegrityError): rows of a file whose tag fails may already be in the catalog, so a caller loading in
    several transactions keeps the catalog only once every step and :func:`check_loaded` succeeded (a restore
    builds the home in a temporary directory: docs/formats.md, sealed objects).
    """
    if not chain or chain[0].kind != "full":
        raise IntegrityError("a restore chain starts with a full backup")

    def known(con) -> None:
        existing = snapshots.table_names(con)
        for content in chain:
            for table in content.meta["tables"]:
                if table not in existing:
                    raise CatalogError(f"catalog backup {content.name}: table {table} is unknown to this toolkit version")

    yield 0, known
    for content in chain:
        yield 0, functools.partial(_clear_full_tables, content)
        for info, rows in content.part_batches():
            yield rows.num_rows, functools.partial(_apply_rows, info, rows)


def _clear_full_tables(content: BackupContent, con) -> None:
    for table, rec in content.meta["tables"].items():
        if rec["mode"] == "full":
            snapshots.clear_table(con, table)


def _apply_rows(info: dict, rows: pa.Table, con) -> None:
    if info["kind"] == "rows":
        snapshots.insert_rows(con, info["table"], rows)
    else:
        key = info["key"]
        snapshots.patch_rows(con, info["table"], key, [c for c, _ in info["columns"] if c != key], rows)


def check_loaded(con, chain: list[BackupContent]) -> dict[str, list]:
    """Table → [count, checksum] of the catalog loaded from ``chain``; IntegrityError if any table differs from
    what the last backup recorded."""
    last = chain[-1]
    got = {}
    for table, rec in last.meta["tables"].items():
        got[table] = snapshots.checksum(con, table, rec["columns"])
        if got[table] != rec["checksum"]:
            raise IntegrityError(
                f"restoring {last.name}: table {table} has {got[table][0]} rows (checksum {got[table][1]}) "
                f"after loading the chain, the backup recorded {rec['checksum'][0]} ({rec['checksum'][1]})"
            )
    return got


def apply_backups(con, chain: list[BackupContent]) -> dict[str, list]:
    """Load a full backup and its incrementals into the (empty, migrated) catalog session ``con``, in its one
    transaction (:func:`apply_steps`, :func:`check_loaded`).

    Returns table → [count, checksum] after loading; raises IntegrityError if
    any table differs from what the last backup recorded.
    """
    for _rows, step in apply_steps(chain):
        step(con)
    return check_loaded(con, chain)
