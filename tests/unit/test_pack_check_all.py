"""``PackReader.check_all`` (verify --full's pass, toolkit/pack.py) gives exactly what ``verify_all`` gives with the
same entries: every (entry, error class, error text, record number, blob ids) in order, every decompressed byte
handed to ``on_data``, and the file's BLAKE3 — on clean packs and on packs with bytes flipped anywhere (header,
records, footer index, trailer), cut short, with records swapped, with entries that lie (sizes, lengths,
offsets), and with frames that do not declare their size; with the file read in blocks of any size (a local
file is), which give the same bytes and checksum as reading each record, and an I/O error at the same read. A part
of the records read alone (``whole_file=False``) gives each of them the result of the whole read. The usual
records' SHA-256 are compared in batches of any length (with the multi-buffer engine where this machine runs it), and
their frames decompressed by the system's libzstd (toolkit/_zstdsys.c) and by python-zstandard alike.
"""
from __future__ import annotations

import hashlib
import io
from uuid import UUID

import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from toolkit import blob_ids, pack
from toolkit.pack import SEAL_OVERHEAD, IndexEntry, PackReader, PackWriter, _aead, _ForwardReader, _record_aad, pack_key
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")
MAILS = [b"From: a@x.org\r\nSubject: one\r\n\r\n" + b"body %d\r\n" % i * (i * 37 + 1) for i in range(9)]


def _pass(reader: PackReader, method: str, entries, **kw):
    seen: list = []
    out = []
    for entry, exc in getattr(reader, method)(entries, on_data=lambda e, chunk: seen.append((e.offset, bytes(chunk))),
                                              **kw):
        out.append((entry, None if exc is None else (type(exc).__name__, str(exc), exc.record, exc.blob_id, exc.bound_to)))
    return out, seen, reader.file_blake3


def _same(storage, name, entries):
    # the reference: verify_all with python-zstandard only; then both passes with the system's libzstd where it
    # loads (toolkit._zstdsys, pack.SYSTEM_ZSTD), and check_all without it
    saved = pack.SYSTEM_ZSTD
    try:
        pack.SYSTEM_ZSTD = False
        a = _pass(PackReader(storage, name, KEY, UUID1), "verify_all", entries)
        assert _pass(PackReader(storage, name, KEY, UUID1), "check_all", entries) == a
        pack.SYSTEM_ZSTD = True
        assert _pass(PackReader(storage, name, KEY, UUID1), "verify_all", entries) == a
        assert _pass(PackReader(storage, name, KEY, UUID1), "check_all", entries) == a
    finally:
        pack.SYSTEM_ZSTD = saved
    return a


def _seal(w: PackWriter, mail: bytes, blob: bytes, size: int, comp: bytes) -> None:
    """A record sealed as PackWriter seals one, with the blob id, plain size and compressed bytes given."""
    nonce = b"\x01" * 12
    record = nonce + _aead(pack_key(KEY, UUID1, w.pack_id)).encrypt(nonce, comp, _record_aad(UUID1, blob, size, 0, True))
    w.add_sealed(blob, record, size, len(comp))


def _pack(tmp_path, extra: bytes | None = None, bound: bool = False):
    storage = LocalStorage(tmp_path / "medium")
    w = PackWriter(storage, KEY, UUID1)
    for m in MAILS:
        w.add(hashlib.sha256(m).digest(), m)
    if bound:  # authenticates, but the mail is another blob's / is one byte shorter than the size it is bound to
        z = zstandard.ZstdCompressor(write_content_size=True)
        _seal(w, MAILS[0], hashlib.sha256(b"another mail").digest(), len(MAILS[0]), z.compress(MAILS[0]))
        _seal(w, MAILS[1], hashlib.sha256(MAILS[1] + b"x").digest(), len(MAILS[1]) + 1, z.compress(MAILS[1]))
        z = zstandard.ZstdCompressor(write_content_size=False)
        _seal(w, MAILS[2], hashlib.sha256(MAILS[2] + b"x").digest(), len(MAILS[2]) + 1, z.compress(MAILS[2]))
    if extra is not None:  # a record whose frame does not declare its size, sealed as PackWriter seals
        cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        _seal(w, extra, hashlib.sha256(extra).digest(), len(extra), cobj.compress(extra) + cobj.flush())
    info = w.seal()
    return storage, info


def test_clean_pack_and_a_frame_without_its_size(tmp_path):
    storage, info = _pack(tmp_path, extra=b"no size in this frame\r\n" * 50)
    out, seen, digest = _same(storage, info.name, info.entries)
    assert [exc for _e, exc in out] == [None] * (len(MAILS) + 1) and digest is not None
    assert b"".join(c for _o, c in seen).startswith(MAILS[0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3),
       st.sampled_from(["flip", "cut", "swap", "lie", "none"]), st.data())
def test_damaged_packs_give_what_verify_all_gives(tmp_path_factory, flips, how, data):
    storage, info = _pack(tmp_path_factory.mktemp("p"))
    path = storage.root / info.name
    raw = bytearray(path.read_bytes())
    entries = list(info.entries)
    if how == "flip":
        for where, mask in flips:
            raw[int(where * len(raw))] ^= mask
    elif how == "cut":
        raw = raw[: int(flips[0][0] * len(raw))]
    elif how == "swap":
        a, b = entries[1], entries[2]
        ra, rb = bytes(raw[a.offset:a.offset + a.length]), bytes(raw[b.offset:b.offset + b.length])
        raw[a.offset:a.offset + a.length + b.length] = rb + ra if b.offset == a.offset + a.length else raw[a.offset:b.offset + b.length]
    elif how == "lie":
        i = data.draw(st.integers(0, len(entries) - 1))
        e = entries[i]
        field = data.draw(st.sampled_from(["size", "csize", "length", "offset", "blob_id"]))
        delta = data.draw(st.sampled_from([-1, 1, 7]))
        if field == "blob_id":
            entries[i] = IndexEntry(bytes(reversed(e.blob_id)), e.offset, e.length, e.size, e.csize)
        elif field == "csize":
            entries[i] = IndexEntry(e.blob_id, e.offset, e.length + delta, e.size, max(1, e.csize + delta))
        else:
            vals = {"size": e.size, "length": e.length, "offset": e.offset}
            vals[field] = max(0, vals[field] + delta)
            entries[i] = IndexEntry(e.blob_id, vals["offset"], vals["length"], vals["size"], e.csize)
    path.write_bytes(bytes(raw))
    # check_all reads a local file in blocks (toolkit.pack.READ_BLOCK): blocks that end anywhere in a record
    block = data.draw(st.sampled_from([5, 64, 777, pack.READ_BLOCK]))
    saved, pack.READ_BLOCK = pack.READ_BLOCK, block
    # check_all hashes the usual records it opened in batches (toolkit.pack.HASH_BATCH_*): batches of any length
    batch = data.draw(st.sampled_from([1, 3, 8, pack.HASH_BATCH_RECORDS]))
    saved_batch, pack.HASH_BATCH_RECORDS = pack.HASH_BATCH_RECORDS, batch
    saved_bytes, pack.HASH_BATCH_BYTES = pack.HASH_BATCH_BYTES, data.draw(st.sampled_from([1, 9000, 4 << 20]))
    try:
        _same(storage, info.name, entries)
        # a part of the records (verify --full's read ahead in parts): read from its first record on, unhashed,
        # each record's result that of the whole file's read with the same entries
        ordered = sorted(entries, key=lambda e: e.offset)
        lo = data.draw(st.integers(0, len(ordered) - 1))
        part = ordered[lo:data.draw(st.integers(lo + 1, len(ordered)))]
        whole = _pass(PackReader(storage, info.name, KEY, UUID1), "check_all", part)
        got = _pass(PackReader(storage, info.name, KEY, UUID1), "check_all", part, whole_file=False)
        assert got == (whole[0], whole[1], None)
    finally:
        pack.READ_BLOCK = saved
        pack.HASH_BATCH_RECORDS = saved_batch
        pack.HASH_BATCH_BYTES = saved_bytes


def test_records_bound_to_another_blob_or_size(tmp_path):
    """Authenticated records whose mail is not the blob or the size they are bound to (F03, F02); their SHA-256
    compared in batches of every length, by each SHA-256 engine this machine runs (toolkit/blob_ids.py)."""
    storage, info = _pack(tmp_path, bound=True)
    saved = pack.HASH_BATCH_BYTES, pack.HASH_BATCH_RECORDS
    try:
        for engine in [blob_ids.HASHLIB, *blob_ids.multi_buffer_levels()]:
            blob_ids.use(engine)
            # batches cut by bytes at the 8th record, and at the 10th (the first record bound to another blob
            # id: its SHA-256 differs from the blob id within a batch the multi-buffer engine hashes)
            eighth, tenth = sum(map(len, MAILS[:8])), sum(map(len, MAILS)) + len(MAILS[0])
            for batch_bytes, batch_records in ((4 << 20, 1024), (1, 1), (eighth, 1024), (tenth, 1024), (1 << 30, 3)):
                pack.HASH_BATCH_BYTES, pack.HASH_BATCH_RECORDS = batch_bytes, batch_records
                out, _seen, _digest = _same(storage, info.name, info.entries)
                errors = [exc for _e, exc in out[len(MAILS):]]
                assert [exc for _e, exc in out[:len(MAILS)]] == [None] * len(MAILS)
                assert "bound to another blob id" in errors[0][1]
                assert "zstd frame declares" in errors[1][1] and "decompressed to" in errors[2][1]
    finally:
        pack.HASH_BATCH_BYTES, pack.HASH_BATCH_RECORDS = saved
        blob_ids.use(None)


def test_short_path_hands_the_whole_mail_once(tmp_path):
    storage, info = _pack(tmp_path)
    _out, seen, _digest = _same(storage, info.name, info.entries)
    assert [c for _o, c in seen] == MAILS
    assert all(e.length == e.csize + SEAL_OVERHEAD for e in info.entries)


class _Disk(io.RawIOBase):
    """A file of ``data`` whose reads fail (OSError) once they reach byte ``bad``."""

    def __init__(self, data: bytes, bad: int | None):
        self._data, self._bad, self._pos = data, bad, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = (0, self._pos, len(self._data))[whence] + pos
        return self._pos

    def readinto(self, b) -> int:
        n = min(len(b), len(self._data) - self._pos)
        if self._bad is not None and self._pos <= self._bad < self._pos + n:
            raise OSError(5, "Input/output error")
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def _run(reader: _ForwardReader, steps) -> list:
    out = []
    for kind, n in steps:
        try:
            if kind == "read":
                out.append(("read", reader.read(n), reader.pos))
            else:
                reader.skip_to(reader.pos + n)
                out.append(("skip", reader.pos))
        except OSError as exc:
            out.append(("error", str(exc), reader.pos))
            return out
    try:
        reader.skip_to(None)
    except OSError as exc:
        out.append(("error", str(exc), reader.pos))
        return out
    out.append(("end", reader.pos, reader.digest()))
    return out


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 300),
       st.lists(st.tuples(st.sampled_from(["read", "read", "skip"]), st.integers(0, 400)), min_size=1, max_size=12),
       st.one_of(st.none(), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)))
@example(bytes(range(50)), 100, [("read", 10)], 0.6)   # the block read reaches the bad byte, the request does not
def test_reading_in_blocks_gives_the_bytes_checksum_and_errors_of_reading_each_request(data, block, steps, where):
    """What each read returns, the position, the file's BLAKE3, and at which request an I/O error surfaces."""
    bad = None if where is None else int(where * len(data))
    plain = _run(_ForwardReader(io.BufferedReader(_Disk(data, bad), buffer_size=16), 0), steps)
    blocks = _run(_ForwardReader(io.BufferedReader(_Disk(data, bad), buffer_size=16), block), steps)
    assert blocks == plain


def test_a_local_pack_is_read_in_blocks_and_other_files_are_not(tmp_path):
    storage, info = _pack(tmp_path)
    with storage.open_read(info.name) as f:
        assert pack._block_for(f) == pack.READ_BLOCK
    assert pack._block_for(io.BufferedReader(_Disk(b"x", None))) == 0
    assert pack._block_for(io.BytesIO(b"x")) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, (1 << 64) - 1), st.uuids())
def test_the_short_paths_aad_is_the_records_aad(blob, size, uid):
    """check_all's short path builds a one-segment record's AAD from a head made once per pack."""
    head = pack.RECORD_AAD_MAGIC + uid.bytes
    assert head + blob + size.to_bytes(8, "big") + pack._ONLY_SEGMENT == _record_aad(uid, blob, size, 0, True)
    assert pack._USUAL_SIZE_MAX <= pack.MAX_MESSAGE_SIZE
