"""Pack files: many sealed mail records in one create-only file (docs/formats.md).

Byte contract (version 1). All integers are unsigned big-endian. A change to
any byte here must fail ``tests/unit/test_pack.py::test_golden_vector``.

::

    pack    = header || record* || footer || trailer
    header  = b"MAPACK01" || archive uuid (16) || pack id (16)          40 bytes
    record  = segment_0 || ... || segment_{n-1}                          one mail
    segment = nonce (12) || AES-256-GCM ciphertext || tag (16)
    footer  = nonce (12) || AES-256-GCM ciphertext || tag (16)          the index
    trailer = footer offset (u64, from file start) || b"MAPACKIX"        16 bytes

Keys. ``K = derive_subkey(derive_key(archive_key, uuid, "pack"), uuid, "pack",
pack_id)`` (HKDF-SHA256, see :mod:`toolkit.crypto`); every segment and the
footer of one pack are sealed under K, with a fresh 96-bit nonce each, taken
only from the injected nonce source (default ``os.urandom``).

Record. The mail's bytes M (``blob_id = SHA-256(M)``) are compressed with
zstd into exactly one frame (level ``ZSTD_LEVEL`` = 1 by default, content size in the frame
header, no checksum, no dictionary); call the compressed bytes C (never
empty) and ``csize = len(C)``. C is cut into ``n = ceil(csize / SEGMENT_PLAIN)``
pieces of ``SEGMENT_PLAIN`` = 16 MiB (the last one shorter or equal), and
piece i is sealed with::

    AAD = b"MAREC\\x01" || uuid (16) || blob_id (32) || len(M) (u64)
          || i (u32) || last (1 byte: 1 for i = n-1, else 0)

so the record's length on disk is ``csize + n * 28``. A record moved to
another pack (other K) or archive (uuid), swapped with another record
(blob_id), cut short (no last segment), or with segments reordered, dropped
or duplicated (i, last) fails authentication.

Footer. Plaintext = one 64-byte entry per record, in file order::

    blob_id (32) || offset (u64) || length (u64, on disk, all segments)
    || plain size (u64) || compressed size (u64)

sealed with ``AAD = b"MAPACKIX" || uuid (16) || pack id (16) || count (u32)``;
the count is ``(footer length - 28) / 64`` and the footer length is
``file size - 16 - footer offset``. Bytes between records that no entry
covers (left by an aborted :meth:`PackWriter.add_stream`) are dead space.

Name. ``packs/<first byte of pack id, 2 hex>/<pack id, 32 hex>.pack``.

Checksum. The catalog keeps the BLAKE3 of the whole file (``packs.blake3``,
:attr:`PackInfo.blake3`; archive format v2, :mod:`toolkit.hashes`); every
copy, mirror, restore and ``verify --full`` compares against it. No byte of
the file itself depends on that choice: the record binding above stays the
SHA-256 blob id.

Policy limits (checked before any allocation): a record claiming a plain size
above :data:`MAX_MESSAGE_SIZE` is refused; decompression is streamed and
never produces more than the authenticated plain size (+1 byte, to notice);
the zstd window is capped at :data:`MAX_WINDOW_SIZE`. The reader tolerates a
frame without content size, refuses one whose content size differs from the
authenticated size, and refuses data after the one frame. Every segment is
authenticated even when decompression fails early, so a changed segment is
reported as an authentication failure, not as corruption.

:func:`seal_record` and :func:`open_record` are pure functions (no storage,
no shared state) so that sealing and checking can run in worker processes
(docs/architecture.md).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator
from uuid import UUID

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import blob_ids, crypto, faults, hashes
from .errors import IntegrityError, MailArchiveError, SourceError
from .storage.base import AtomicWriter, Storage

MAGIC = b"MAPACK01"
INDEX_MAGIC = b"MAPACKIX"
RECORD_AAD_MAGIC = b"MAREC\x01"

PACK_ID_SIZE = 16
BLOB_ID_SIZE = 32
HEADER_SIZE = len(MAGIC) + 16 + PACK_ID_SIZE           # 40
TRAILER_SIZE = 8 + len(INDEX_MAGIC)                     # 16
ENTRY_SIZE = BLOB_ID_SIZE + 4 * 8                       # 64
NONCE_SIZE = crypto.NONCE_SIZE                          # 12
SEAL_OVERHEAD = crypto.SEAL_OVERHEAD                    # 28
MIN_PACK_SIZE = HEADER_SIZE + SEAL_OVERHEAD + TRAILER_SIZE  # 84: no records

PACK_TARGET_SIZE = 64 * 1024 * 1024
#: a pack is written in blocks of this many bytes (records gathered): BLAKE3 runs ~1.6x faster over one
#: 1 MiB block than over forty 26 KB records, and the storage gets one call per block
#: (bench/RESULTS.md "Worker CPU of import eml|maildir|mbox, round 2"); no byte of the file changes
WRITE_BLOCK = 1 << 20
SEGMENT_PLAIN = 16 * 1024 * 1024

#: Largest plain size a record may claim (16 GiB). Far above any real mail;
#: the importer's ``max_message_size`` must not exceed it. A record claiming
#: more (K5) is refused before anything is read or allocated.
MAX_MESSAGE_SIZE = 16 * 1024**3
#: zstd window limit for decoding (128 MiB, zstd's own default limit).
MAX_WINDOW_SIZE = 1 << 27

_OUT_CHUNK = 1 << 20          # decompressed bytes per read from zstd
_ONE_SHOT_MAX = 32 << 20      # one-segment records up to this plain size are decompressed in one call
_MAX_SWAP_PROBES = 4096       # candidates tried when naming a swapped record

NonceSource = Callable[[int], bytes]


class NoncePool:
    """A nonce source that draws its random bytes from ``os.urandom`` in batches: one ``getrandom`` call per
    ``batch`` nonces instead of one per record (a pack task seals ~1,600 records).

    Every nonce is still 96 fresh random bits from the kernel, handed out once: the pool only cuts a
    larger draw into 12-byte pieces and never gives a piece twice. A pool belongs to the process that
    drew its bytes: in a child forked after a draw, the bytes it inherited are thrown away and drawn
    afresh (``os.register_at_fork``), so two processes never share a piece. Make one per pack task
    (:func:`toolkit.pack_tasks.build_pack`), never a module-level one. Requests of another size than
    :data:`NONCE_SIZE` go to ``os.urandom`` directly."""

    __slots__ = ("_batch", "_buf", "_pos", "_fork")

    def __init__(self, batch: int = 256):
        if batch < 1:
            raise ValueError("a nonce pool draws at least one nonce at a time")
        self._batch = batch
        self._buf = b""
        self._pos = 0
        self._fork = _FORKS[0]

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        if n != NONCE_SIZE:
            return os.urandom(n)
        if pos >= len(self._buf) or self._fork != _FORKS[0]:
            self._buf = os.urandom(NONCE_SIZE * self._batch)
            self._fork = _FORKS[0]
            pos = 0
        self._pos = pos + NONCE_SIZE
        return self._buf[pos:pos + NONCE_SIZE]


#: how many forks this process is away from its first ancestor that imported this module (a pool drawn in
#: one generation is drawn again in the next: :class:`NoncePool`)
_FORKS = [0]


def _forked() -> None:
    _FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

_NAME_RE = re.compile(r"^([0-9a-f]{32})\.pack$")
_AUTH_PHRASE = "authentication failed — record changed, truncated, or moved from another pack/archive"


# --------------------------------------------------------------------- errors


class PackFormatError(IntegrityError):
    """The pack as a whole does not parse: magic, trailer, footer offset, uuid or pack id."""


class PackIndexAuthError(PackFormatError):
    """The footer index does not authenticate (changed, or wrong key / foreign archive)."""


class _RecordError(IntegrityError):
    def __init__(
        self,
        message: str,
        *,
        pack: str | None = None,
        record: int | None = None,
        blob_id: bytes | None = None,
        bound_to: bytes | None = None,
    ):
        super().__init__(message)
        self.pack = pack
        self.record = record
        self.blob_id = blob_id
        #: the blob id the record's bytes really belong to, when that could be found
        self.bound_to = bound_to


class RecordAuthError(_RecordError):
    """A record's segments fail authentication (changed, truncated, moved, swapped)."""


class RecordCorruptError(_RecordError):
    """A record authenticates but decompression fails, its size differs, or its hash is another blob id."""


# ------------------------------------------------------------------ data types


@dataclass(frozen=True)
class IndexEntry:
    blob_id: bytes
    offset: int      # of the record, from file start
    length: int      # of the record on disk, all segment overheads included
    size: int        # plain (message) size
    csize: int       # compressed size


@dataclass(frozen=True)
class PackInfo:
    pack_id: bytes
    name: str
    bytes: int
    records: int
    blake3: bytes                 # BLAKE3 of the whole file: the pack checksum the catalog keeps
    entries: list[IndexEntry] = field(default_factory=list)


# ------------------------------------------------------------ pure functions


def pack_key(archive_key: bytes, archive_uuid: UUID, pack_id: bytes) -> bytes:
    """The per-pack subkey every record and the footer of that pack are sealed under."""
    _check_pack_id(pack_id)
    root = crypto.derive_key(archive_key, archive_uuid, "pack")
    return crypto.derive_subkey(root, archive_uuid, "pack", pack_id)


def pack_name(pack_id: bytes) -> str:
    _check_pack_id(pack_id)
    return f"packs/{pack_id[:1].hex()}/{pack_id.hex()}.pack"


def pack_id_from_name(name: str) -> bytes:
    """The pack id a file name claims (only the last path component counts)."""
    m = _NAME_RE.match(name.rsplit("/", 1)[-1])
    if not m:
        raise PackFormatError(f"{name}: not a pack file name (expected <32 hex digits>.pack)")
    return bytes.fromhex(m.group(1))


def segment_count(csize: int) -> int:
    return max(1, -(-csize // SEGMENT_PLAIN))


def record_length(csize: int) -> int:
    """Bytes on disk of a record whose compressed size is ``csize``."""
    return csize + segment_count(csize) * SEAL_OVERHEAD


def seal_record(
    key: bytes,
    archive_uuid: UUID,
    blob_id: bytes,
    data: bytes,
    nonce_source: NonceSource = os.urandom,
    level: int | None = None,
    check: bool = True,
) -> tuple[bytes, int]:
    """(record bytes, compressed size) for one mail, sealed under pack subkey ``key``; the record is a
    ``bytearray`` (each segment encrypted in place: its bytes are those of :func:`_seal_segment`).

    Pure: safe to call in a worker process; feed the result to
    :meth:`PackWriter.add_sealed` of the pack whose key this is. ``check=False``
    skips re-hashing when the caller has just computed ``blob_id`` from ``data``.
    """
    if check:
        _check_blob(blob_id, data)
    compressed = compress(data, level)
    csize = len(compressed)
    aes = _aead(key)
    if csize <= SEGMENT_PLAIN:  # one segment (every mail up to ~16 MiB compressed): the loop below, unrolled
        record = bytearray(csize + SEAL_OVERHEAD)
        _seal_one_into(aes, nonce_source, archive_uuid, blob_id, len(data), compressed, memoryview(record))
        return record, csize
    # every segment is encrypted straight into its place in the record: no copy of a piece, no join
    return _seal_compressed(aes, nonce_source, archive_uuid, blob_id, len(data), compressed), csize


def compress(data, level: int | None = None) -> bytes:
    """A mail's compressed bytes C (one zstd frame: the record's plaintext, see above): the first step of
    :func:`seal_record`, apart for :meth:`PackWriter.add_compressed`."""
    return _compressor(ZSTD_LEVEL if level is None else level).compress(data)


def _seal_one_into(aes: AESGCM, nonce_source: NonceSource, archive_uuid: UUID, blob_id: bytes, size: int,
                   compressed, out: memoryview) -> None:
    """Seal a one-segment record (``len(compressed) <= SEGMENT_PLAIN``) into ``out``, exactly
    ``len(compressed) + SEAL_OVERHEAD`` bytes: nonce, then ciphertext and tag encrypted straight into place."""
    nonce = nonce_source(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce source returned a nonce that is not 12 bytes")
    out[:NONCE_SIZE] = nonce
    aes.encrypt_into(nonce, compressed, _record_aad(archive_uuid, blob_id, size, 0, True), out[NONCE_SIZE:])


def open_record(key: bytes, archive_uuid: UUID, blob_id: bytes, size: int, csize: int, record: bytes) -> bytes:
    """Inverse of :func:`seal_record`: authenticate, decompress (capped at ``size``), check the hash."""
    entry = IndexEntry(blob_id, 0, record_length(max(csize, 1)), size, csize)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = record[pos : pos + n]
        pos += len(chunk)
        return chunk

    try:
        out = b"".join(_iter_plain(key, archive_uuid, entry, read))
        if pos != len(record):
            raise _Fail(True, f"{len(record) - pos} bytes after the last segment")
    except _Fail as fail:
        cls = RecordAuthError if fail.auth else RecordCorruptError
        detail = f"{_AUTH_PHRASE} ({fail.detail})" if fail.auth else fail.detail
        raise cls(f"record (blob {blob_id.hex()[:16]}): {detail}", blob_id=blob_id) from None
    return out


# ----------------------------------------------------------------- internals


class _Fail(Exception):
    """Internal: a record check failed; the caller adds pack and record names."""

    def __init__(self, auth: bool, detail: str, first_sealed: bytes | None = None):
        super().__init__(detail)
        self.auth = auth
        self.detail = detail
        self.first_sealed = first_sealed


def _check_pack_id(pack_id: bytes) -> None:
    if not isinstance(pack_id, (bytes, bytearray)) or len(pack_id) != PACK_ID_SIZE:
        raise ValueError("a pack id is 16 bytes")


def _check_blob(blob_id: bytes, data: bytes) -> None:
    if len(blob_id) != BLOB_ID_SIZE:
        raise ValueError("a blob id is 32 bytes (SHA-256)")
    if len(data) > MAX_MESSAGE_SIZE:
        raise ValueError(f"message of {len(data)} bytes exceeds MAX_MESSAGE_SIZE ({MAX_MESSAGE_SIZE})")
    if hashlib.sha256(data).digest() != blob_id:
        raise ValueError("blob id is not the SHA-256 of the message")


#: Level 1: on the 5,429 real list mails of the test corpora it stores 1.7 % more than level 3 and
#: compresses 1.4x faster (bench/README.md); the level is not part of the format, readers never need it.
ZSTD_LEVEL = 1


_LOCAL = threading.local()  # one compressor per thread and level: a ZstdCompressor is reusable, not thread-safe


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """The calling thread's compressor for ``level`` (made once: making one per record cost ~4 % of a worker)."""
    cache = getattr(_LOCAL, "compressors", None)
    if cache is None:
        cache = _LOCAL.compressors = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False,
                                                    write_dict_id=False)
    return c


def _aead(key: bytes) -> AESGCM:
    """The calling thread's AESGCM for ``key``: the last one made is kept (a pack task seals every record of
    its pack under one key; making an AESGCM per record cost ~2 µs)."""
    last = getattr(_LOCAL, "aead", None)
    if last is not None and last[0] == key:
        return last[1]
    aes = AESGCM(key)
    _LOCAL.aead = (bytes(key), aes)
    return aes


def _record_aad(archive_uuid: UUID, blob_id: bytes, size: int, index: int, last: bool) -> bytes:
    return (
        RECORD_AAD_MAGIC
        + archive_uuid.bytes
        + bytes(blob_id)
        + size.to_bytes(8, "big")
        + index.to_bytes(4, "big")
        + (b"\x01" if last else b"\x00")
    )


def _index_aad(archive_uuid: UUID, pack_id: bytes, count: int) -> bytes:
    return INDEX_MAGIC + archive_uuid.bytes + bytes(pack_id) + count.to_bytes(4, "big")


def _seal_segment(aes: AESGCM, nonce_source: NonceSource, aad: bytes, plain) -> bytes:
    nonce = nonce_source(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce source returned a nonce that is not 12 bytes")
    return nonce + aes.encrypt(nonce, bytes(plain), aad)


def _seal_compressed(aes: AESGCM, nonce_source: NonceSource, archive_uuid: UUID, blob_id: bytes, size: int,
                     compressed) -> bytearray:
    """The record of compressed bytes C (any number of segments), as :func:`seal_record` makes it."""
    csize = len(compressed)
    n = segment_count(csize)
    record = bytearray(csize + n * SEAL_OVERHEAD)
    out, view = memoryview(record), memoryview(compressed)
    pos = 0
    for i in range(n):
        piece = view[i * SEGMENT_PLAIN : (i + 1) * SEGMENT_PLAIN]
        nonce = nonce_source(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce source returned a nonce that is not 12 bytes")
        end = pos + SEAL_OVERHEAD + len(piece)
        out[pos : pos + NONCE_SIZE] = nonce
        aes.encrypt_into(nonce, piece, _record_aad(archive_uuid, blob_id, size, i, i == n - 1),
                         out[pos + NONCE_SIZE : end])
        pos = end
    return record


def _encode_entry(e: IndexEntry) -> bytes:
    return (
        e.blob_id
        + e.offset.to_bytes(8, "big")
        + e.length.to_bytes(8, "big")
        + e.size.to_bytes(8, "big")
        + e.csize.to_bytes(8, "big")
    )


_ENTRY_STRUCT = struct.Struct(">32sQQQQ")   # blob_id, offset, length, size, csize (= _encode_entry)


def _decode_entries(plain: bytes) -> list[IndexEntry]:
    return [IndexEntry(*fields) for fields in _ENTRY_STRUCT.iter_unpack(plain)]


def _check_claims(size: int, csize: int, length: int) -> None:
    """Policy checks on an entry's numbers, before anything is read or allocated (K5)."""
    if size > MAX_MESSAGE_SIZE:
        raise _Fail(False, f"claims a plain size of {size} bytes, above the {MAX_MESSAGE_SIZE}-byte policy limit; refused")
    if csize < 1:
        raise _Fail(False, "claims an empty compressed stream (a zstd frame is never empty)")
    if length != record_length(csize):
        raise _Fail(False, f"claims {length} bytes on disk for {csize} compressed bytes ({record_length(csize)} expected)")


def _iter_plain(key: bytes, archive_uuid: UUID, entry: IndexEntry, read: Callable[[int], bytes],
                aes: AESGCM | None = None, dctx: zstandard.ZstdDecompressor | None = None) -> Iterator[bytes]:
    """Authenticate segment by segment, decompress capped at entry.size, check the hash.

    ``read(n)`` returns the next n bytes of the record (fewer at end of file).
    Yields decompressed chunks; raises :class:`_Fail`. Only bytes of
    authenticated segments ever reach the decompressor; the size and hash
    checks complete when the iterator ends. ``aes`` (an AESGCM under ``key``)
    and ``dctx`` (a decompressor with the window cap) may be handed in by a
    caller that opens many records: a new zstd context per record costs more
    than decompressing a small mail.
    """
    _check_claims(entry.size, entry.csize, entry.length)
    n = segment_count(entry.csize)
    segs = _open_segments(aes if aes is not None else AESGCM(key), archive_uuid, entry, read, n)
    first = next(segs)
    declared = _frame_content_size(first, entry)
    if n == 1 and declared == entry.size <= _ONE_SHOT_MAX:
        # the common case (one segment, a size the frame declares): one call, no stream reader; the system's
        # libzstd where it loads, python-zstandard for anything it does not decode (whose error is the one raised)
        fast = system_decompress()
        out = fast(first, entry.size, MAX_WINDOW_SIZE) if fast is not None else None
        if out is None:
            out = _decompress_whole(first, dctx)
        del first
        segs.close()
        _check_plain(len(out), hashlib.sha256(out), entry)
        yield out
        return
    yield from _stream_plain(first, segs, entry)


def _open_segments(aes: AESGCM, archive_uuid: UUID, entry: IndexEntry, read: Callable[[int], bytes],
                   n: int) -> Iterator[bytes]:
    """The record's ``n`` segments, each read, authenticated and opened in turn (raises :class:`_Fail`)."""
    remaining = entry.csize
    for i in range(n):
        want = min(SEGMENT_PLAIN, remaining) + SEAL_OVERHEAD
        remaining -= want - SEAL_OVERHEAD
        sealed = read(want)
        first = sealed if i == 0 else None
        if len(sealed) < want:
            raise _Fail(True, f"segment {i + 1} of {n} is {len(sealed)} bytes, {want} expected: truncated", first)
        aad = _record_aad(archive_uuid, entry.blob_id, entry.size, i, i == n - 1)
        try:
            plain = aes.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise _Fail(True, f"segment {i + 1} of {n}", first) from None
        del sealed, first
        yield plain


def _frame_content_size(first: bytes, entry: IndexEntry) -> int:
    """The content size the zstd frame declares (or CONTENTSIZE_UNKNOWN); a different size fails."""
    try:
        params = zstandard.get_frame_parameters(first)
    except zstandard.ZstdError as exc:
        raise _Fail(False, f"not a zstd frame: {exc}") from None
    if params.content_size != zstandard.CONTENTSIZE_UNKNOWN and params.content_size != entry.size:
        raise _Fail(False, f"zstd frame declares {params.content_size} bytes, the authenticated size is {entry.size}")
    return params.content_size


def _decompressor() -> zstandard.ZstdDecompressor:
    """The calling thread's decompressor with the window cap (made once: a new one per record cost ~9 µs, as much as
    decompressing a small mail; a ZstdDecompressor is reusable, not thread-safe)."""
    d = getattr(_LOCAL, "dctx", None)
    if d is None:
        d = _LOCAL.dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
    return d


def _decompress_whole(data: bytes, dctx: zstandard.ZstdDecompressor | None = None) -> bytes:
    try:
        return (dctx or _decompressor()).decompress(data)
    except zstandard.ZstdError as exc:
        raise _Fail(False, f"decompression failed (one zstd frame expected): {exc}") from None


def _check_plain(total: int, digest, entry: IndexEntry) -> None:
    """The decompressed size and SHA-256 must be the authenticated size and blob id."""
    if total != entry.size:
        raise _Fail(False, f"decompressed to {total} bytes, the authenticated size is {entry.size}")
    if digest.digest() != entry.blob_id:
        raise _Fail(False, f"content hash {digest.hexdigest()[:16]}… differs: bound to another blob id")


def _stream_plain(first: bytes, segs: Iterator[bytes], entry: IndexEntry) -> Iterator[bytes]:
    """Decompress the segments as a stream, capped at entry.size, then check size and hash."""
    source = _IterSource(first, segs)
    reader = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE).stream_reader(
        source, read_size=1 << 17, read_across_frames=False, closefd=False
    )
    digest = hashlib.sha256()
    total = 0
    try:
        while True:
            try:
                out = reader.read(min(_OUT_CHUNK, entry.size - total + 1))
            except zstandard.ZstdError as exc:
                raise _Fail(False, f"decompression failed (one zstd frame expected): {exc}") from None
            if not out:
                break
            total += len(out)
            if total > entry.size:
                raise _Fail(False, f"decompresses to more than the authenticated {entry.size} bytes; stopped there")
            digest.update(out)
            yield out
    except _Fail as fail:
        if not fail.auth:
            # a changed segment later on is the better diagnosis than the decompression error it causes
            source.drain()
        raise
    source.drain()   # authenticate every remaining segment (the last flag sits in the last one)
    _check_plain(total, digest, entry)


class _IterSource:
    """A file-like ``read(n)`` over an iterator of byte strings (for zstd's stream reader)."""

    def __init__(self, first: bytes, rest: Iterator[bytes]):
        self._buf = memoryview(first)
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._rest))
            except StopIteration:
                return b""
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def drain(self) -> None:
        self._buf = memoryview(b"")
        for _ in self._rest:
            pass


def _read_full(f: BinaryIO, n: int) -> bytes:
    parts = []
    while n > 0:
        chunk = f.read(min(n, SEGMENT_PLAIN + SEAL_OVERHEAD))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------------- writer


class PackWriter:
    """Builds one pack under a temporary name; :meth:`seal` publishes it create-only.

    No global state and no catalog access: one writer per worker is fine.
    """

    def __init__(
        self,
        storage: Storage,
        archive_key: bytes,
        archive_uuid: UUID,
        *,
        pack_id: bytes | None = None,
        nonce_source: NonceSource = os.urandom,
        level: int | None = None,
    ):
        self.pack_id = bytes(pack_id) if pack_id is not None else os.urandom(PACK_ID_SIZE)
        self.name = pack_name(self.pack_id)
        self.archive_uuid = archive_uuid
        self._key = pack_key(archive_key, archive_uuid, self.pack_id)
        self._aes = AESGCM(self._key)
        self._nonces = nonce_source
        self._level = ZSTD_LEVEL if level is None else level
        self._entries: list[IndexEntry] = []
        self._blob_ids: set[bytes] = set()
        self._sha = hashes.checksum_hasher()
        self._pos = 0
        #: the block being gathered (:meth:`_write`): its first ``_fill`` bytes are appended and not yet hashed or
        #: written. One buffer per writer, reused for every block: a piece is copied (or a record sealed:
        #: :meth:`add_compressed`) straight into it, and a full block goes to the storage from it
        self._buf = bytearray(2 * WRITE_BLOCK)
        self._fill = 0
        self._closed = False
        self._w: AtomicWriter = storage.open_write(self.name)
        self._write(MAGIC + archive_uuid.bytes + self.pack_id)

    @property
    def size(self) -> int:
        """Bytes written so far (footer and trailer not included)."""
        return self._pos

    @property
    def count(self) -> int:
        return len(self._entries)

    def add(self, blob_id: bytes, data: bytes) -> IndexEntry:
        self._check_open(blob_id)
        record, csize = seal_record(self._key, self.archive_uuid, blob_id, data, self._nonces, self._level)
        return self.add_sealed(blob_id, record, len(data), csize)

    def add_sealed(self, blob_id: bytes, record: bytes, size: int, csize: int) -> IndexEntry:
        """Append a record made by :func:`seal_record` under this pack's key. The record is kept by reference
        until its block is written (:meth:`_write`): it must not change before :meth:`seal`."""
        self._check_open(blob_id)
        if len(blob_id) != BLOB_ID_SIZE or not 0 <= size <= MAX_MESSAGE_SIZE or csize < 1:
            raise ValueError("bad blob id, size or compressed size")
        if len(record) != record_length(csize):
            raise ValueError(f"record is {len(record)} bytes, {record_length(csize)} expected for csize {csize}")
        offset = self._pos
        self._write(record)
        return self._remember(IndexEntry(bytes(blob_id), offset, len(record), size, csize))

    def add_compressed(self, blob_id: bytes, compressed, size: int) -> IndexEntry:
        """Append the record of a mail whose compressed bytes (:func:`compress`) are given: the same record as
        :func:`seal_record` makes, sealed under this pack's key straight into the block being gathered (no
        record of its own, no copy into the block). ``size``: the mail's plain size."""
        self._check_open(blob_id)
        csize = len(compressed)
        if len(blob_id) != BLOB_ID_SIZE or not 0 <= size <= MAX_MESSAGE_SIZE or csize < 1:
            raise ValueError("bad blob id, size or compressed size")
        n = csize + SEAL_OVERHEAD
        if n >= WRITE_BLOCK:  # a record of a block's size or more goes through on its own (:meth:`_write`)
            return self.add_sealed(blob_id, _seal_compressed(self._aes, self._nonces, self.archive_uuid, blob_id,
                                                             size, compressed), size, csize)
        fill = self._fill
        with memoryview(self._buf) as view:
            _seal_one_into(self._aes, self._nonces, self.archive_uuid, blob_id, size, compressed,
                           view[fill : fill + n])
        offset = self._pos
        self._pos += n
        self._fill = fill + n
        if self._fill >= WRITE_BLOCK:
            self._flush()
        return self._remember(IndexEntry(bytes(blob_id), offset, n, size, csize))

    def add_stream(self, blob_id: bytes, size: int, chunks: Iterable[bytes]) -> IndexEntry:
        """Compress and seal a mail read in chunks; memory stays at a few segments.

        If the chunks do not add up to ``size`` bytes hashing to ``blob_id``,
        :class:`SourceError` is raised before the last segment is written; the
        segments already written are dead space no entry points to, and the
        writer stays usable.
        """
        self._check_open(blob_id)
        if len(blob_id) != BLOB_ID_SIZE or not 0 <= size <= MAX_MESSAGE_SIZE:
            raise ValueError("bad blob id or size")
        chunker = _compressor(self._level).chunker(size=size, chunk_size=SEGMENT_PLAIN)
        offset = self._pos
        digest = hashlib.sha256()
        total = csize = index = 0
        pending: bytes | None = None

        def emit(piece: bytes, last: bool) -> None:
            nonlocal index, csize
            aad = _record_aad(self.archive_uuid, blob_id, size, index, last)
            self._write(_seal_segment(self._aes, self._nonces, aad, piece))
            index += 1
            csize += len(piece)

        for chunk in chunks:
            total += len(chunk)
            if total > size:
                raise SourceError(f"message {blob_id.hex()[:16]}: more than the announced {size} bytes (changed while read?)")
            digest.update(chunk)
            for piece in chunker.compress(chunk):
                if pending is not None:
                    emit(pending, False)
                pending = piece
        if total != size or digest.digest() != blob_id:
            raise SourceError(
                f"message {blob_id.hex()[:16]}: read {total} bytes of {size}, or their hash differs (changed while read?)"
            )
        for piece in chunker.finish():
            if pending is not None:
                emit(pending, False)
            pending = piece
        assert pending is not None  # a zstd frame is never empty
        emit(pending, True)
        return self._remember(IndexEntry(bytes(blob_id), offset, self._pos - offset, size, csize))

    def take_from(self, reader: "PackReader", entries: Iterable[IndexEntry]) -> dict[bytes, IndexEntry]:
        """Copy records of another pack of this archive into this one: blob id -> new entry.

        Each segment is authenticated under the source pack's key and sealed again under this pack's
        (its compressed bytes unchanged, so no decompression, no new compression: a move costs two AES-GCM
        passes). The mail's SHA-256 is not recomputed: the source record was authenticated, and its AAD
        binds blob id and size. Records are read in the order of their offsets, in one open file.
        """
        moved: dict[bytes, IndexEntry] = {}
        with reader.storage.open_read(reader.name) as f:
            aes = AESGCM(reader._key)
            for entry in sorted(entries, key=lambda e: e.offset):
                self._check_open(entry.blob_id)
                offset = self._pos
                try:  # a failure part-way leaves dead bytes no entry points to; the caller drops this pack
                    _check_claims(entry.size, entry.csize, entry.length)
                    f.seek(entry.offset)
                    n = segment_count(entry.csize)
                    for i, plain in enumerate(_open_segments(aes, self.archive_uuid, entry, lambda k: _read_full(f, k), n)):
                        aad = _record_aad(self.archive_uuid, entry.blob_id, entry.size, i, i == n - 1)
                        self._write(_seal_segment(self._aes, self._nonces, aad, plain))
                except _Fail as fail:
                    raise reader._error(entry, fail) from None
                moved[entry.blob_id] = self._remember(
                    IndexEntry(bytes(entry.blob_id), offset, self._pos - offset, entry.size, entry.csize))
        return moved

    def seal(self) -> PackInfo:
        """Write footer and trailer, then publish create-only (ObjectExistsError if the name is taken)."""
        if self._closed:
            raise ValueError(f"pack {self.name} is already sealed or aborted")
        try:
            count = len(self._entries)
            footer_offset = self._pos
            plain = b"".join(_encode_entry(e) for e in self._entries)
            self._write(_seal_segment(self._aes, self._nonces, _index_aad(self.archive_uuid, self.pack_id, count), plain))
            self._write(footer_offset.to_bytes(8, "big") + INDEX_MAGIC)
            self._flush()
            faults.hit("pack.before_commit")
            self._closed = True
            self._w.commit()
        except BaseException:
            self.abort()
            raise
        return PackInfo(self.pack_id, self.name, self._pos, count, self._sha.digest(), list(self._entries))

    def abort(self) -> None:
        """Drop the temporary file; safe to call twice or after seal."""
        self._closed = True
        self._fill = 0
        self._w.abort()

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def _check_open(self, blob_id: bytes) -> None:
        if self._closed:
            raise ValueError(f"pack {self.name} is already sealed or aborted")
        if bytes(blob_id) in self._blob_ids:
            raise ValueError(f"blob {blob_id.hex()[:16]} is already in pack {self.name}")

    def _write(self, data: bytes) -> None:
        """Append ``data`` to the pack: gathered into blocks of :data:`WRITE_BLOCK` bytes or more (less than
        two: every piece gathered is shorter than one), each hashed (the pack's BLAKE3) and handed to the
        storage in one piece (:meth:`_flush`); a piece that large on its own goes straight through, after
        what is gathered (a 16 MiB segment is never copied)."""
        n = len(data)
        self._pos += n
        if n >= WRITE_BLOCK:
            self._flush()
            self._put(data)
            return
        fill = self._fill
        self._buf[fill : fill + n] = data
        self._fill = fill + n
        if self._fill >= WRITE_BLOCK:
            self._flush()

    def _flush(self) -> None:
        """Hash and write what is gathered, from the writer's buffer (the storage copies what it keeps: the
        buffer is filled again with the next block)."""
        if self._fill:
            fill, self._fill = self._fill, 0
            with memoryview(self._buf) as view, view[:fill] as block:
                self._put(block)

    def _put(self, data) -> None:
        try:
            self._w.write(data)
        except BaseException:
            self.abort()
            raise
        self._sha.update(data)

    def _remember(self, entry: IndexEntry) -> IndexEntry:
        self._entries.append(entry)
        self._blob_ids.add(entry.blob_id)
        return entry


# ---------------------------------------------------------------------- reader


class PackReader:
    """Reads one pack. :meth:`read` and :meth:`stream` need no footer (entries may come from the catalog)."""

    def __init__(self, storage: Storage, name: str, archive_key: bytes, archive_uuid: UUID):
        self.storage = storage
        self.name = name
        self.archive_uuid = archive_uuid
        self.pack_id = pack_id_from_name(name)
        self._key = pack_key(archive_key, archive_uuid, self.pack_id)
        self._entries: list[IndexEntry] | None = None
        self._numbers: dict[int, int] = {}
        self.footer_offset: int | None = None
        #: BLAKE3 of the whole file (the pack checksum), set when a :meth:`verify_all` iteration completes
        self.file_blake3: bytes | None = None

    # -- index

    def index(self) -> list[IndexEntry]:
        with self.storage.open_read(self.name) as f:
            return self._load_index(f, _size_of(f))

    def _load_index(self, f: BinaryIO, size: int) -> list[IndexEntry]:
        if size < MIN_PACK_SIZE:
            raise PackFormatError(f"pack {self.name}: truncated ({size} bytes; a pack has at least {MIN_PACK_SIZE})")
        f.seek(0)
        self._check_header(_read_full(f, HEADER_SIZE))
        f.seek(size - TRAILER_SIZE)
        trailer = _read_full(f, TRAILER_SIZE)
        if trailer[8:] != INDEX_MAGIC:
            raise PackFormatError(f"pack {self.name}: no trailer (MAPACKIX missing at the end): truncated or tail overwritten")
        footer_offset = int.from_bytes(trailer[:8], "big")
        if not HEADER_SIZE <= footer_offset <= size - TRAILER_SIZE - SEAL_OVERHEAD:
            raise PackFormatError(
                f"pack {self.name}: footer offset {footer_offset} out of range for a file of {size} bytes"
            )
        footer_len = size - TRAILER_SIZE - footer_offset
        count, rest = divmod(footer_len - SEAL_OVERHEAD, ENTRY_SIZE)
        if rest:
            raise PackFormatError(f"pack {self.name}: footer of {footer_len} bytes is not a whole number of entries")
        f.seek(footer_offset)
        sealed = _read_full(f, footer_len)
        try:
            plain = AESGCM(self._key).decrypt(
                sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _index_aad(self.archive_uuid, self.pack_id, count)
            )
        except InvalidTag:
            raise PackIndexAuthError(
                f"pack {self.name}: footer index authentication failed — changed, or sealed under another key "
                "(wrong key or foreign archive?)"
            ) from None
        entries = _decode_entries(plain)
        self.footer_offset = footer_offset
        self._set_entries(entries)
        return list(entries)

    def _check_header(self, header: bytes) -> None:
        if len(header) < HEADER_SIZE or header[:8] != MAGIC:
            raise PackFormatError(f"pack {self.name}: bad magic (not a MAPACK01 pack)")
        file_uuid = UUID(bytes=header[8:24])
        if file_uuid != self.archive_uuid:
            raise PackFormatError(
                f"pack {self.name}: belongs to archive {file_uuid}, not to this archive {self.archive_uuid}"
            )
        if header[24:40] != self.pack_id:
            raise PackFormatError(
                f"pack {self.name}: header pack id {header[24:40].hex()} differs from the name's {self.pack_id.hex()}"
            )

    def _set_entries(self, entries: list[IndexEntry]) -> None:
        self._entries = list(entries)
        self._numbers = {e.offset: i for i, e in enumerate(self._entries)}

    # -- one record

    def read(self, entry: IndexEntry) -> bytes:
        """The message, fully checked. Memory: the message itself plus one segment."""
        return b"".join(self.stream(entry))

    def stream(self, entry: IndexEntry) -> Iterator[bytes]:
        """The message in chunks; it is only proven complete when the iterator ends without error."""
        try:
            _check_claims(entry.size, entry.csize, entry.length)
        except _Fail as fail:
            raise self._error(entry, fail) from None
        with self.storage.open_read(self.name) as f:
            f.seek(entry.offset)
            try:
                yield from _iter_plain(self._key, self.archive_uuid, entry, lambda n: _read_full(f, n))
            except _Fail as fail:
                raise self._error(entry, fail) from None

    # -- whole pack

    def verify_all(
        self,
        entries: list[IndexEntry] | None = None,
        on_data: Callable[[IndexEntry, bytes], None] | None = None,
    ) -> Iterator[tuple[IndexEntry, Exception | None]]:
        """Check every record in one forward pass over one open file.

        Without ``entries`` the footer index is read (PackFormatError if it
        cannot be); with entries (e.g. from the catalog) a pack whose footer
        is damaged can still be checked record by record. When the iteration
        completes, :attr:`file_blake3` holds the BLAKE3 of the whole file.
        ``on_data(entry, chunk)``, when given, receives each decompressed chunk
        of a record as it passes (only proven good when that record then
        yields no error), so callers can look at the mail in the same pass.
        """
        self.file_blake3 = None
        with self.storage.open_read(self.name) as f:
            size = _size_of(f)
            if entries is None:
                entries = self._load_index(f, size)
                limit = self.footer_offset
            else:
                self._set_entries(entries)
                limit = None   # a record past the end of the file reads short: reported as truncated
            f.seek(0)
            fwd = _ForwardReader(f)
            aes, dctx = AESGCM(self._key), _decompressor()
            for entry in sorted(self._entries, key=lambda e: e.offset):
                if entry.offset < max(fwd.pos, HEADER_SIZE) or (limit is not None and entry.offset + entry.length > limit):
                    yield entry, self._error(entry, _Fail(False, "lies outside the record area or overlaps another record"))
                    continue
                fwd.skip_to(entry.offset)
                yield entry, self._checked(entry, fwd.read, aes, dctx, on_data)
            fwd.skip_to(None)
            self.file_blake3 = fwd.digest()

    def check_all(
        self,
        entries: list[IndexEntry],
        on_data: Callable[[IndexEntry, bytes], None] | None = None,
        *,
        whole_file: bool = True,
    ) -> Iterator[tuple[IndexEntry, Exception | None]]:
        """:meth:`verify_all` over ``entries`` (``verify --full``'s pass): the same results, in the same order,
        the same bytes read and :attr:`file_blake3`, with a short path for the usual record; a local file is
        read in blocks (:class:`_ForwardReader`).

        A record of one segment whose zstd frame declares its authenticated size (up to the one-shot limit)
        is read, authenticated, decompressed and hashed by the very calls :func:`_iter_plain` makes, without
        its generators and copies. A record that fails any step there, and every other record, is checked by
        :func:`_iter_plain` itself, on the bytes already read: its error is verify_all's
        (tests/unit/test_pack_check_all.py compares the two on damaged packs).

        ``whole_file=False`` (a part of a pack's records, ``verify --full``'s read ahead, verify/ahead.py): the file
        is read from the first of ``entries`` to the end of the last (a read block beyond at most), unhashed; the records' results are those of
        the whole read, :attr:`file_blake3` stays None.
        """
        self.file_blake3 = None
        with self.storage.open_read(self.name) as f:
            _size_of(f)
            self._set_entries(entries)
            ordered = sorted(self._entries, key=lambda e: e.offset)
            start = 0 if whole_file or not ordered else ordered[0].offset
            f.seek(start)
            fwd = _ForwardReader(f, _block_for(f), start=start, hashed=whole_file)
            aes, dctx = AESGCM(self._key), _decompressor()
            aad_head = RECORD_AAD_MAGIC + self.archive_uuid.bytes
            held = _HeldRecords(self, aes, dctx, on_data)
            fast = system_decompress()
            for entry in ordered:
                if entry.offset < max(fwd.pos, HEADER_SIZE):
                    yield from held.release()
                    yield entry, self._error(entry, _Fail(False, "lies outside the record area or overlaps another record"))
                    continue
                usual = (0 < entry.csize <= SEGMENT_PLAIN and entry.size <= _USUAL_SIZE_MAX
                         and entry.length == entry.csize + SEAL_OVERHEAD)
                try:
                    fwd.skip_to(entry.offset)
                    read = fwd.read
                    # _check_claims of a one-segment record, inline: size within policy, length = csize + one seal
                    if usual:
                        sealed = fwd.read_view(entry.csize + SEAL_OVERHEAD)
                except BaseException:  # a read that fails: the records read before it are handed out first
                    yield from held.release()
                    raise
                if usual:
                    plain = _open_usual(aes, aad_head, entry, sealed, dctx, hashed=False, fast=fast)
                    if plain is not None:
                        if held.add(entry, sealed, plain):
                            yield from held.release()
                        continue
                    read = _Replay(bytes(sealed)).read
                yield from held.release()
                yield entry, self._checked(entry, read, aes, dctx, on_data)
            yield from held.release()
            if whole_file:
                fwd.skip_to(None)
                self.file_blake3 = fwd.digest()

    def _checked(self, entry: IndexEntry, read, aes, dctx, on_data) -> Exception | None:
        """One record read through :func:`_iter_plain` (its plain bytes to ``on_data``): None, or its error."""
        try:
            for chunk in _iter_plain(self._key, self.archive_uuid, entry, read, aes, dctx):
                if on_data is not None:
                    on_data(entry, chunk)
        except _Fail as fail:
            return self._error(entry, fail)
        return None

    # -- error reports

    def _error(self, entry: IndexEntry, fail: _Fail) -> IntegrityError:
        number = self._record_number(entry)
        label = f"record {number}" if number is not None else f"record at offset {entry.offset} (not in the footer index)"
        where = f"pack {self.name}, {label} (blob {entry.blob_id.hex()[:16]})"
        if not fail.auth:
            return RecordCorruptError(f"{where}: {fail.detail}", pack=self.name, record=number, blob_id=entry.blob_id)
        message = f"{where}: {_AUTH_PHRASE} ({fail.detail})"
        other = self._owner_of(entry, fail.first_sealed)
        if other is not None:
            n, e = other
            message += f"; its bytes authenticate as record {n} (blob {e.blob_id.hex()[:16]}): bound to another blob id (records swapped?)"
        return RecordAuthError(
            message, pack=self.name, record=number, blob_id=entry.blob_id, bound_to=other[1].blob_id if other else None
        )

    def _record_number(self, entry: IndexEntry) -> int | None:
        if self._entries is None:
            try:
                self.index()
            except MailArchiveError:   # the footer is damaged too: name the offset instead
                pass
        return self._numbers.get(entry.offset)

    def _owner_of(self, entry: IndexEntry, first_sealed: bytes | None) -> tuple[int, IndexEntry] | None:
        """Which other record of this pack a failing first segment really belongs to, if any."""
        if not first_sealed or len(first_sealed) <= SEAL_OVERHEAD or not self._entries:
            return None
        aes = AESGCM(self._key)
        probes = 0
        for n, cand in enumerate(self._entries):
            if cand.blob_id == entry.blob_id or min(cand.csize, SEGMENT_PLAIN) + SEAL_OVERHEAD != len(first_sealed):
                continue
            probes += 1
            if probes > _MAX_SWAP_PROBES:
                break
            aad = _record_aad(self.archive_uuid, cand.blob_id, cand.size, 0, segment_count(cand.csize) == 1)
            try:
                aes.decrypt(first_sealed[:NONCE_SIZE], first_sealed[NONCE_SIZE:], aad)
            except InvalidTag:
                continue
            return n, cand
        return None


class _ForwardReader:
    """Forward-only reads of one open file, hashing every byte that passes (BLAKE3, the pack checksum).

    ``block`` > 0 (a local file: :func:`_block_for`): the file is read and hashed in blocks of that size, and
    ``read(n)`` is served from them: the same bytes, the same checksum, about a quarter less CPU than a read and
    a hasher update per record (BLAKE3 is fastest on long runs of whole 1 KiB chunks; 0.22 -> 0.16 CPU-s over
    the 475 MB of packs of bench/RESULTS.md's verify runs). A read of the file that
    raises (an I/O error) switches back to reads of exactly what is asked, from where the blocks ended, so the
    error surfaces at the request that needs those bytes, as without blocks."""

    def __init__(self, f: BinaryIO, block: int = 0, start: int = 0, hashed: bool = True):
        self._f = f
        self._sha = hashes.checksum_hasher() if hashed else _NoHash()
        self.pos = start   # where ``f`` stands
        self._block = block
        self._buf = b""     # the last block read, hashed; its bytes from ``_at`` on not handed out yet
        self._view = memoryview(self._buf)
        self._at = 0

    def read(self, n: int) -> bytes:
        if not self._block:
            data = _read_full(self._f, n)
            self._sha.update(data)
            self.pos += len(data)
            return data
        at, buf = self._at, self._buf
        if n <= len(buf) - at:
            self._at = at + n
            self.pos += n
            return buf[at:at + n]
        parts = [buf[at:]] if at < len(buf) else []
        need = n - (len(buf) - at)
        self._buf, self._view, self._at = b"", memoryview(b""), 0
        while need > 0:
            try:
                block = self._f.read(max(self._block, need))
            except OSError:
                self._block = 0   # from here on as without blocks (the position: the end of the bytes hashed)
                self._f.seek(self.pos + sum(len(p) for p in parts))
                rest = _read_full(self._f, need)
                self._sha.update(rest)
                parts.append(rest)
                break
            if not block:
                break
            self._sha.update(block)
            if len(block) <= need:
                parts.append(block)
                need -= len(block)
            else:
                parts.append(block[:need])
                self._buf, self._view, self._at = block, memoryview(block), need
                need = 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos += len(data)
        return data

    def read_view(self, n: int) -> bytes | memoryview:
        """:meth:`read`, as a view into the block read when the bytes lie within it (no copy: a record's sealed
        bytes go straight to AES-GCM); the view holds the block until it is dropped."""
        at = self._at
        if self._block and n <= len(self._buf) - at:
            self._at = at + n
            self.pos += n
            return self._view[at:at + n]
        return self.read(n)

    def skip_to(self, target: int | None) -> None:
        """Read forward to ``target`` (None: to the end of the file)."""
        while target is None or self.pos < target:
            want = _OUT_CHUNK * 4 if target is None else min(_OUT_CHUNK * 4, target - self.pos)
            if not self.read(want):
                return

    def digest(self) -> bytes:
        return self._sha.digest()


class _NoHash:
    """The hasher of a :class:`_ForwardReader` that hashes nothing (a part of a pack read, ``whole_file=False``)."""

    def update(self, data) -> None:
        pass

    def digest(self) -> None:
        return None


#: read-ahead block of :meth:`PackReader.check_all` on a local file (:class:`_ForwardReader`)
READ_BLOCK = 1 << 20


def _block_for(f) -> int:
    """:data:`READ_BLOCK` for a file of the operating system (whose read errors are OSError), else 0."""
    return READ_BLOCK if isinstance(f, io.BufferedReader) and isinstance(f.raw, io.FileIO) else 0


#: the plain size of a record check_all opens on its short path: the one-shot limit, within the policy's
_USUAL_SIZE_MAX = min(_ONE_SHOT_MAX, MAX_MESSAGE_SIZE)
#: the end of a one-segment record's AAD (:func:`_record_aad`): segment 0, the last
_ONLY_SEGMENT = (0).to_bytes(4, "big") + b"\x01"


#: :meth:`PackReader.check_all` compares the SHA-256 of the usual records it has opened when they hold this many
#: bytes (hashed together: the multi-buffer engine keeps its lanes busy on a batch of a few MiB of mail,
#: toolkit/blob_ids.py) or are this many records, or before any other record
HASH_BATCH_BYTES = 4 << 20
HASH_BATCH_RECORDS = 1024


#: records of one segment whose frame declares their size are decompressed by the system's libzstd where it loads
#: (:func:`system_decompress`); False: by python-zstandard only (tests compare the two)
SYSTEM_ZSTD = True


def system_decompress() -> Callable[[bytes, int, int], bytes | None] | None:
    """``decompress(frame, size, max_window)`` of the optional module ``toolkit._zstdsys`` (the system's libzstd,
    whose assembly Huffman decoder reads mail ~14 % faster than python-zstandard's bundled copy: docs/architecture.md,
    "The system's libzstd for reading records"); None where it is not built, the library does not load, or
    :data:`SYSTEM_ZSTD` is False."""
    if not SYSTEM_ZSTD:
        return None
    if not _SYSTEM_FAST:  # looked up once per process: a module that is not built costs a failed import each time
        try:
            from . import _zstdsys
        except ImportError:
            _SYSTEM_FAST.append(None)
        else:
            _SYSTEM_FAST.append(_zstdsys.decompress if _zstdsys.load() else None)
    return _SYSTEM_FAST[0]


_SYSTEM_FAST: list = []


def _open_usual(aes: AESGCM, aad_head: bytes, entry: IndexEntry, sealed: bytes,
                dctx: zstandard.ZstdDecompressor, hashed: bool = True,
                fast: Callable[[bytes, int, int], bytes | None] | None = None) -> bytes | None:
    """The mail of a one-segment record whose frame declares its size, checked as :func:`_iter_plain` checks it
    (authenticated, decompressed in one call, size and SHA-256); None where any step fails or does not apply.
    ``aad_head``: the magic and archive uuid that begin every record's AAD; the AAD is :func:`_record_aad`'s.
    ``hashed=False``: all but the SHA-256, which the caller compares. ``fast``: :func:`system_decompress`'s
    function, used instead of ``dctx`` (it returns None where the frame is not one of that declared size and a
    window within :data:`MAX_WINDOW_SIZE`, or fails: the record is then read by :func:`_iter_plain`)."""
    try:
        if len(sealed) != entry.csize + SEAL_OVERHEAD:
            return None
        view = memoryview(sealed)
        aad = aad_head + bytes(entry.blob_id) + entry.size.to_bytes(8, "big") + _ONLY_SEGMENT
        first = aes.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad)
        if fast is not None:
            out = fast(first, entry.size, MAX_WINDOW_SIZE)
            if out is None:
                return None
        elif zstandard.get_frame_parameters(first).content_size != entry.size:
            return None
        else:
            out = dctx.decompress(first)
        if len(out) != entry.size or (hashed and hashlib.sha256(out).digest() != entry.blob_id):
            return None
        return out
    except Exception:  # InvalidTag, ZstdError or anything else: _iter_plain says what it is
        return None


class _HeldRecords:
    """:meth:`PackReader.check_all`'s usual records, opened, their SHA-256 not yet compared: hashed together
    (toolkit/blob_ids.py picks the engine), then handed out in order before anything else is."""

    def __init__(self, reader: "PackReader", aes, dctx, on_data):
        self._reader, self._aes, self._dctx, self._on_data = reader, aes, dctx, on_data
        self._held: list[tuple[IndexEntry, bytes, bytes]] = []
        self._bytes = 0

    def add(self, entry: IndexEntry, sealed: bytes, plain: bytes) -> bool:
        """Hold one record; True when the batch is full (to be released now)."""
        self._held.append((entry, sealed, plain))
        self._bytes += len(plain)
        return self._bytes >= HASH_BATCH_BYTES or len(self._held) >= HASH_BATCH_RECORDS

    def release(self) -> Iterator[tuple[IndexEntry, Exception | None]]:
        """The held records' results, in order. A batch cut short (by another record, the end) is hashed one
        mail at a time: the multi-buffer engine gains only on a batch of a few MiB (bench/RESULTS.md,
        "verify --full: ... in parts")."""
        held, full = self._held, self._bytes >= HASH_BATCH_BYTES
        if not held:
            return
        self._held, self._bytes = [], 0
        many = blob_ids.sha256_many if full else blob_ids.sha256_hashlib
        for (entry, sealed, plain), digest in zip(held, many([plain for _e, _s, plain in held])):
            if digest == entry.blob_id:
                if self._on_data is not None:
                    self._on_data(entry, plain)
                yield entry, None
            else:
                yield entry, self._reader._checked(entry, _Replay(bytes(sealed)).read, self._aes, self._dctx,
                                                   self._on_data)


class _Replay:
    """``read(n)`` over bytes already read (then nothing): a record checked again by :func:`_iter_plain`."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


def _size_of(f: BinaryIO) -> int:
    f.seek(0, os.SEEK_END)
    return f.tell()
