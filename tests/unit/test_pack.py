"""Pack file format: round trips, golden vector, tamper and truncation (docs/reliability.md B, F, K)."""
from __future__ import annotations

import hashlib
import itertools
import os
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from uuid import UUID

import blake3
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from toolkit.errors import ExitCode, IntegrityError, ObjectExistsError, SourceError
from toolkit.pack import (
    MAX_MESSAGE_SIZE,
    SEGMENT_PLAIN,
    IndexEntry,
    PackFormatError,
    PackIndexAuthError,
    PackReader,
    PackWriter,
    RecordAuthError,
    RecordCorruptError,
    WRITE_BLOCK,
    open_record,
    pack_key,
    pack_name,
    record_length,
    seal_record,
)
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")
UUID2 = UUID("00000000-0000-4000-8000-000000000002")
AUTH_PHRASE = "authentication failed — record changed, truncated, or moved from another pack/archive"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def counter_nonces():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def build(storage, messages, *, key=KEY, uuid=UUID1, pack_id=None, **kw):
    w = PackWriter(storage, key, uuid, pack_id=pack_id, **kw)
    for m in messages:
        w.add(sha(m), m)
    return w.seal()


def file_of(storage: LocalStorage, name: str) -> Path:
    return storage.root / name


def flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "medium")


@pytest.fixture(scope="module")
def big() -> bytes:
    # incompressible and larger than two segments: three segments on disk
    return os.urandom(40_000_000)


# ------------------------------------------------------------------ round trip


def test_round_trip_small_big_and_streamed(storage, big):
    streamed = os.urandom(35_000_000)
    small = [b"", b"x", b"bin\x00ary\x00\xff" * 100, b"Subject: hi\r\n\r\n" + b"text " * 5000]
    w = PackWriter(storage, KEY, UUID1)
    added = [w.add(sha(m), m) for m in small + [big]]
    chunks = (streamed[i : i + 1_000_003] for i in range(0, len(streamed), 1_000_003))
    added.append(w.add_stream(sha(streamed), len(streamed), chunks))
    assert w.count == 6
    info = w.seal()

    raw = file_of(storage, info.name).read_bytes()
    assert info.name == f"packs/{info.pack_id[:1].hex()}/{info.pack_id.hex()}.pack"
    assert (info.bytes, info.records, info.blake3) == (len(raw), 6, blake3.blake3(raw).digest())
    assert info.entries == added
    assert added[4].length == record_length(added[4].csize) and added[4].length > 2 * SEGMENT_PLAIN

    reader = PackReader(storage, info.name, KEY, UUID1)
    entries = reader.index()
    assert entries == added
    for entry, message in zip(entries, small + [big, streamed]):
        assert entry.size == len(message) and entry.blob_id == sha(message)
        assert reader.read(entry) == message
        assert b"".join(reader.stream(entry)) == message


def test_a_pack_of_many_records_is_written_in_blocks_and_hashed_whole(tmp_path):
    """PackWriter gathers records into blocks of WRITE_BLOCK bytes (toolkit/pack.py ``_write``): the storage gets
    a few large writes, a piece of a block's size or more goes through on its own, and the file, its size and
    its BLAKE3 are those of the records written one by one: header, records in order, footer, trailer."""
    sizes: list[int] = []

    class Counting(LocalStorage):
        def open_write(self, name):
            w = super().open_write(name)
            write = w.write
            w.write = lambda data: sizes.append(len(data)) or write(data)
            return w

    storage = Counting(tmp_path / "medium")
    messages = [os.urandom(3000 + 97 * i) for i in range(300)] + [os.urandom(WRITE_BLOCK + 5)] + [b"last"]
    nonces = counter_nonces()
    w = PackWriter(storage, KEY, UUID1, pack_id=b"\x22" * 16, nonce_source=nonces)
    added = [w.add(sha(m), m) for m in messages]
    assert w.size == added[-1].offset + added[-1].length  # counted as appended, written or not
    info = w.seal()
    raw = file_of(storage, info.name).read_bytes()
    assert (info.bytes, info.blake3) == (len(raw), blake3.blake3(raw).digest())
    assert sum(sizes) == len(raw) and len(sizes) <= len(raw) // WRITE_BLOCK + 3
    assert sizes.count(added[300].length) == 1 and added[300].length > WRITE_BLOCK  # the large one on its own
    assert sum(n < WRITE_BLOCK for n in sizes) <= 2   # what was gathered before the large one, and the end
    # the same bytes as the records themselves, in order (their nonces replayed from the same counter)
    again = counter_nonces()
    records = [seal_record(pack_key(KEY, UUID1, b"\x22" * 16), UUID1, sha(m), m, again)[0] for m in messages]
    footer = raw[info.bytes - 16 - 28 - 64 * len(messages):]
    assert raw == b"MAPACK01" + UUID1.bytes + b"\x22" * 16 + b"".join(records) + footer
    reader = PackReader(storage, info.name, KEY, UUID1)
    assert [reader.read(e) for e in reader.index()] == messages


def test_seal_record_in_a_worker_process(storage):
    message = b"From: worker@example.org\r\n\r\nsealed elsewhere\r\n" * 20
    w = PackWriter(storage, KEY, UUID1)
    with ProcessPoolExecutor(max_workers=1) as pool:
        record, csize = pool.submit(seal_record, pack_key(KEY, UUID1, w.pack_id), UUID1, sha(message), message).result()
    entry = w.add_sealed(sha(message), record, len(message), csize)
    info = w.seal()
    assert PackReader(storage, info.name, KEY, UUID1).read(entry) == message


def test_add_stream_refuses_a_changed_source_and_the_writer_stays_usable(storage):
    good, other = b"a" * 5000, b"b" * 5000
    w = PackWriter(storage, KEY, UUID1)
    with pytest.raises(SourceError):
        w.add_stream(sha(good), len(good), [other])
    with pytest.raises(SourceError):
        w.add_stream(sha(good), len(good), [good[:100]])
    with pytest.raises(SourceError):
        w.add_stream(sha(good), len(good), [good, b"!"])
    entry = w.add(sha(good), good)
    info = w.seal()
    reader = PackReader(storage, info.name, KEY, UUID1)
    assert reader.index() == [entry]
    assert reader.read(entry) == good
    assert [err for _, err in reader.verify_all()] == [None]


def test_writer_refuses_wrong_blob_id_and_duplicates(storage):
    w = PackWriter(storage, KEY, UUID1)
    with pytest.raises(ValueError):
        w.add(sha(b"other"), b"mail")
    w.add(sha(b"mail"), b"mail")
    with pytest.raises(ValueError):
        w.add(sha(b"mail"), b"mail")
    w.abort()
    assert [p for p in storage.root.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------- golden vector

GOLDEN_MESSAGES = [b"", b"From: a@example.org\r\nSubject: golden\r\n\r\nhello, world\r\n", bytes(range(256))]
GOLDEN_SIZE = 698
GOLDEN_SHA256 = "15eb226f4682aa5d49a5e4d8b043376766ae8dd5f8ef29a2902302b0ccd84c03"
#: the pack checksum the catalog keeps for the golden pack (format v2: BLAKE3 of the file)
GOLDEN_BLAKE3 = "86cb4d20ea43c371569c0fb0be51628107ea5f7d7a796755bdb7b5c9aa7a3254"
GOLDEN_HEX = (
    "4d415041434b30310000000000004000800000000000000111111111111111111111111111111111000000000000000000000001"
    "888eb085994ce1e8d2107333ae93c2c03044983c661d8498c5000000000000000000000002579cef920f50334eb989d9af5c374f"
    "db06c9f64f5ac055c0f65e7bf9eee1697898af6295e84737149313cc01098228ea58113e2080436fb81c666f9efc749c02751f98"
    "6ac58998d7012de4efde1f0200000000000000000000000330eb7c573afca37ec909b0e3dcb009bc380b22577efd635e976f2e45"
    "3f68af1996256595d2072c7f4d0c518e79a3cdffec89d7afa0bf885e22975ac1580f1f5a17028231482065cd0bedf6ae72a91f49"
    "40b699ff01ff3ef5a485378aebcaa37a8b2940c625352cef63270ecea91820f624e7ccfe6acadf5d5551ae9cbd5d45ed25788682"
    "c41e11cb8410f4154d01aad531448ed07a503bfb9e78b795ef90e352aece73e6b9ee70df222bceb8ce9a33147fbeca1634347baf"
    "73b03b77fbbc4f51838966159ec8be78a3e8b2894bf4b1e320352e647e9bc79454002f308e75db819cf681afa1846fe6df896b0b"
    "be742466077f85f51e844d33cbcbae8edbea27a851ab9478f617eca786d1ca0b48e63ebdec32ae4900c9cf42f7d7000000000000"
    "000000000004c177aefa49f35ecc7cfa337506f1c7cbe5d40b7b09dab2ce813b9e30ff6670e9903a29770e42d57b87214b653680"
    "095f70f6958ddb02a41e8cca2691d7a29a8402c4c0d21a83a65339374ecfacc22d56621e913f0fc97e32daee98cfaa2d2d9d2091"
    "d81bbb9dba4dbaf41ed8962daa3de4162b4d05ac0545b1bba8668c3a1e2c365e63e501b050bde4ee14edef1844fe7984ce3956d1"
    "e79751b11137e1d29b44b238a0e3a09488a2c1fb163fd80c2b8d0a427925b1d0d0ce3fb7ab0754927593b89b8c14b92337cebe0f"
    "5c10e459ff7d00000000000001ce4d415041434b4958"
)


def test_golden_vector(storage):
    """The pack format is pinned: any byte change (layout, AAD, KDF, zstd framing) fails here.

    The compressed bytes come from libzstd at level 3; a libzstd upgrade that
    changes its output would also fail this test (zstandard 0.25 / libzstd 1.5.7).
    """
    info = build(storage, GOLDEN_MESSAGES, pack_id=b"\x11" * 16, nonce_source=counter_nonces(), level=3)
    raw = file_of(storage, info.name).read_bytes()
    assert info.name == "packs/11/11111111111111111111111111111111.pack"
    assert len(raw) == GOLDEN_SIZE
    assert hashlib.sha256(raw).hexdigest() == GOLDEN_SHA256
    assert raw == bytes.fromhex(GOLDEN_HEX)
    assert info.blake3.hex() == GOLDEN_BLAKE3
    # the contract's landmarks, independently of the reader
    assert raw[:40] == b"MAPACK01" + UUID1.bytes + b"\x11" * 16
    assert raw[40:52] == (1).to_bytes(12, "big")          # first nonce, first record
    assert raw[-8:] == b"MAPACKIX"
    footer = int.from_bytes(raw[-16:-8], "big")
    assert raw[footer : footer + 12] == (4).to_bytes(12, "big")  # 3 records, then the footer
    assert len(raw) - 16 - footer == 28 + 3 * 64


def test_golden_pack_reads_back(storage):
    """A reader of today reads the pinned bytes (an old-format fixture, STYLE.md) and checksums them with BLAKE3."""
    name = "packs/11/11111111111111111111111111111111.pack"
    storage.put(name, bytes.fromhex(GOLDEN_HEX))
    reader = PackReader(storage, name, KEY, UUID1)
    assert [reader.read(e) for e in reader.index()] == GOLDEN_MESSAGES
    assert [err for _, err in reader.verify_all()] == [None] * len(GOLDEN_MESSAGES)
    assert reader.file_blake3.hex() == GOLDEN_BLAKE3


# ----------------------------------------------------------------- crafted packs


def contract_record(aes, uuid, blob_id, size, compressed):
    """One record straight from the byte contract: 16 MiB pieces, each sealed with its own AAD."""
    pieces = [compressed[i : i + SEGMENT_PLAIN] for i in range(0, len(compressed), SEGMENT_PLAIN)]
    out = b""
    for i, piece in enumerate(pieces):
        last = b"\x01" if i == len(pieces) - 1 else b"\x00"
        aad = b"MAREC\x01" + uuid.bytes + blob_id + size.to_bytes(8, "big") + i.to_bytes(4, "big") + last
        nonce = os.urandom(12)
        out += nonce + aes.encrypt(nonce, piece, aad)
    return out


def craft_pack(storage, pack_id, records, uuid=UUID1):
    """A pack written straight from the byte contract in toolkit/pack.py: (blob_id, claimed size, compressed)."""
    aes = AESGCM(pack_key(KEY, uuid, pack_id))
    out = bytearray(b"MAPACK01" + uuid.bytes + pack_id)
    index = b""
    for blob_id, size, compressed in records:
        offset = len(out)
        out += contract_record(aes, uuid, blob_id, size, compressed)
        index += blob_id + b"".join(x.to_bytes(8, "big") for x in (offset, len(out) - offset, size, len(compressed)))
    footer_offset = len(out)
    nonce = os.urandom(12)
    count = len(records).to_bytes(4, "big")
    out += nonce + aes.encrypt(nonce, index, b"MAPACKIX" + uuid.bytes + pack_id + count)
    out += footer_offset.to_bytes(8, "big") + b"MAPACKIX"
    storage.put(pack_name(pack_id), bytes(out))
    return PackReader(storage, pack_name(pack_id), KEY, uuid)


def zstd(data: bytes, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=content_size).compress(data)


def test_crafted_pack_from_the_contract_reads(storage):
    msg = b"written by the contract, not by PackWriter"
    reader = craft_pack(storage, b"\x22" * 16, [(sha(msg), len(msg), zstd(msg))])
    assert [reader.read(e) for e in reader.index()] == [msg]


def test_segments_after_the_frame_end_are_corrupt_and_still_authenticated(storage):
    # an insider record: the single zstd frame ends in segment 1, two more segments follow
    msg = b"short mail"
    compressed = zstd(msg) + os.urandom(2 * SEGMENT_PLAIN)
    reader = craft_pack(storage, b"\x23" * 16, [(sha(msg), len(msg), compressed)])
    (entry,) = reader.index()
    with pytest.raises(RecordCorruptError, match="one zstd frame"):
        reader.read(entry)
    flip(file_of(storage, reader.name), entry.offset + entry.length - 5)  # the tag of segment 3
    with pytest.raises(RecordAuthError, match="segment 3 of 3"):
        reader.read(entry)


def test_k5_huge_claimed_size_is_refused_before_reading(storage):
    claimed = 1 << 40  # 1 TiB, authenticated by an insider with the key
    reader = craft_pack(storage, b"\x33" * 16, [(sha(b"x"), claimed, zstd(b"x"))])
    (entry,) = reader.index()
    assert entry.size == claimed > MAX_MESSAGE_SIZE
    with pytest.raises(RecordCorruptError, match="policy limit"):
        reader.read(entry)
    ((_, err),) = list(reader.verify_all())
    assert isinstance(err, RecordCorruptError)


def test_decompression_never_exceeds_the_authenticated_size(storage):
    # a 256 MiB zero bomb without content size in its frame, claiming 1000 bytes
    cobj = zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
    zeros = bytes(1 << 20)
    bomb = b"".join(cobj.compress(zeros) for _ in range(256)) + cobj.flush()
    reader = craft_pack(storage, b"\x44" * 16, [(sha(bytes(1000)), 1000, bomb)])
    (entry,) = reader.index()
    tracemalloc.start()
    try:
        with pytest.raises(RecordCorruptError, match="more than the authenticated 1000 bytes"):
            reader.read(entry)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    "blob, size, compressed, match",
    [
        (sha(b"hello"), 4, zstd(b"hello"), "declares 5 bytes"),                  # frame vs authenticated size
        (sha(b"hello"), 5, b"not a zstd frame at all", "not a zstd frame"),      # F5: decrypts, does not decompress
        (sha(b"hello"), 5, zstd(b"hello")[:-3], "decompress"),                   # F5: frame cut inside the ciphertext
        (sha(b"hello"), 6, zstd(b"hello", content_size=False), "6"),             # F5: length differs
        (sha(b"other"), 5, zstd(b"hello"), "bound to another blob id"),          # hash is another blob
    ],
)
def test_authentic_but_corrupt_records(storage, blob, size, compressed, match):
    reader = craft_pack(storage, b"\x55" * 16, [(blob, size, compressed)])
    (entry,) = reader.index()
    with pytest.raises(RecordCorruptError, match=match):
        reader.read(entry)
    with pytest.raises(RecordCorruptError):
        list(reader.stream(entry))


# ---------------------------------------------------------------------- tamper


@pytest.fixture
def three(storage):
    messages = [os.urandom(3000), os.urandom(3000), b"mail three " * 400]
    info = build(storage, messages)
    return storage, info, messages


PACK_REGIONS = {
    "header magic": (lambda info, footer, size: 3, PackFormatError),
    "header uuid": (lambda info, footer, size: 8 + 5, PackFormatError),
    "header pack id": (lambda info, footer, size: 24 + 15, PackFormatError),
    "footer nonce": (lambda info, footer, size: footer + 2, PackIndexAuthError),
    "footer ciphertext": (lambda info, footer, size: footer + 12 + 70, PackIndexAuthError),
    "footer tag": (lambda info, footer, size: size - 16 - 1, PackIndexAuthError),
    "trailer offset": (lambda info, footer, size: size - 16 + 7, PackFormatError),
    "trailer magic": (lambda info, footer, size: size - 1, PackFormatError),
}


@pytest.mark.parametrize("region", sorted(PACK_REGIONS))
def test_flipped_bit_in_pack_structure(three, region):
    storage, info, messages = three
    path = file_of(storage, info.name)
    size = path.stat().st_size
    footer = int.from_bytes(path.read_bytes()[-16:-8], "big")
    where, expected = PACK_REGIONS[region]
    flip(path, where(info, footer, size))
    reader = PackReader(storage, info.name, KEY, UUID1)
    with pytest.raises(PackFormatError) as exc:
        reader.index()
    assert type(exc.value) is expected
    assert info.name in str(exc.value)
    with pytest.raises(expected):
        list(reader.verify_all())
    # B1/F1: the records themselves are intact and readable from catalog entries
    assert [reader.read(e) for e in info.entries] == messages
    assert [err for _, err in reader.verify_all(info.entries)] == [None, None, None]


@pytest.mark.parametrize("part", ["nonce", "ciphertext", "tag"])
def test_flipped_bit_in_a_record(three, part):
    storage, info, messages = three
    e = info.entries[1]
    flip(file_of(storage, info.name), {"nonce": e.offset + 5, "ciphertext": e.offset + 12 + 100, "tag": e.offset + e.length - 3}[part])
    reader = PackReader(storage, info.name, KEY, UUID1)
    assert reader.index() == info.entries
    assert reader.read(info.entries[0]) == messages[0]
    assert reader.read(info.entries[2]) == messages[2]
    with pytest.raises(RecordAuthError) as exc:
        reader.read(e)
    msg = str(exc.value)
    assert info.name in msg and "record 1" in msg and e.blob_id.hex()[:16] in msg and AUTH_PHRASE in msg
    assert exc.value.record == 1 and exc.value.blob_id == e.blob_id and exc.value.bound_to is None
    assert exc.value.exit_code == ExitCode.FINDINGS
    with pytest.raises(RecordAuthError):
        list(reader.stream(e))


def test_swapped_records_are_bound_to_each_other(three):
    storage, info, messages = three
    a, b = info.entries[0], info.entries[1]
    assert a.length == b.length
    path = file_of(storage, info.name)
    raw = bytearray(path.read_bytes())
    rec_a, rec_b = raw[a.offset : a.offset + a.length], raw[b.offset : b.offset + b.length]
    raw[a.offset : a.offset + a.length], raw[b.offset : b.offset + b.length] = rec_b, rec_a
    path.write_bytes(bytes(raw))
    reader = PackReader(storage, info.name, KEY, UUID1)
    for mine, theirs, n in ((a, b, 0), (b, a, 1)):
        with pytest.raises(RecordAuthError) as exc:
            reader.read(mine)
        assert exc.value.bound_to == theirs.blob_id
        assert f"record {n}" in str(exc.value) and "bound to another blob id" in str(exc.value)
    results = list(reader.verify_all())
    assert [type(err) for _, err in results] == [RecordAuthError, RecordAuthError, type(None)]


def test_record_copied_from_another_pack_fails(storage):
    a = build(storage, [os.urandom(2000)])
    b_msg = os.urandom(2000)
    b = build(storage, [b_msg])
    (ea,), (eb,) = a.entries, b.entries
    assert ea.length == eb.length
    rec_a = file_of(storage, a.name).read_bytes()[ea.offset : ea.offset + ea.length]
    path_b = file_of(storage, b.name)
    raw = bytearray(path_b.read_bytes())
    raw[eb.offset : eb.offset + eb.length] = rec_a
    path_b.write_bytes(bytes(raw))
    reader = PackReader(storage, b.name, KEY, UUID1)
    assert reader.index() == b.entries          # footer untouched
    with pytest.raises(RecordAuthError, match="moved from another pack/archive"):
        reader.read(eb)


def test_pack_of_another_archive_is_refused(storage, tmp_path):
    pack_id = b"\x77" * 16
    other = LocalStorage(tmp_path / "other")
    build(other, [b"mail of archive 2"], uuid=UUID2, pack_id=pack_id)
    mine = build(storage, [b"mail of archive 1"], uuid=UUID1, pack_id=pack_id)
    # the whole pack copied over: the header names the other archive
    foreign = other.read(pack_name(pack_id))
    file_of(storage, mine.name).write_bytes(foreign)
    reader = PackReader(storage, mine.name, KEY, UUID1)
    with pytest.raises(PackFormatError) as exc:
        reader.index()
    assert str(UUID1) in str(exc.value) and str(UUID2) in str(exc.value)
    # the foreign record under our entry: same pack id, same key, other archive -> fails
    entry = PackReader(other, mine.name, KEY, UUID2).index()[0]
    with pytest.raises(RecordAuthError):
        reader.read(IndexEntry(entry.blob_id, entry.offset, entry.length, entry.size, entry.csize))


def test_pack_id_in_header_must_match_the_name(storage):
    info = build(storage, [b"one"])
    other = pack_name(b"\x88" * 16)
    storage.put(other, file_of(storage, info.name).read_bytes())
    with pytest.raises(PackFormatError) as exc:
        PackReader(storage, other, KEY, UUID1).index()
    assert info.pack_id.hex() in str(exc.value) and "88888888" in str(exc.value)


def test_wrong_key_fails_the_footer(three):
    storage, info, _ = three
    reader = PackReader(storage, info.name, bytes(32), UUID1)
    with pytest.raises(PackIndexAuthError, match="wrong key or foreign archive"):
        reader.index()
    with pytest.raises(RecordAuthError):
        reader.read(info.entries[0])


# ------------------------------------------------------------- truncation (B1, B2)


@pytest.mark.parametrize("cut", ["0", "27", "mid-record", "minus one"])
def test_truncated_pack(three, cut):
    storage, info, messages = three
    path = file_of(storage, info.name)
    raw = path.read_bytes()
    keep = {"0": 0, "27": 27, "mid-record": info.entries[1].offset + 100, "minus one": len(raw) - 1}[cut]
    path.write_bytes(raw[:keep])
    reader = PackReader(storage, info.name, KEY, UUID1)
    with pytest.raises(PackFormatError):
        reader.index()
    with pytest.raises(PackFormatError):
        list(reader.verify_all())
    results = dict((e.offset, err) for e, err in reader.verify_all(info.entries))
    for entry, message in zip(info.entries, messages):
        if entry.offset + entry.length <= keep:
            assert reader.read(entry) == message
            assert results[entry.offset] is None
        else:
            with pytest.raises(RecordAuthError, match="truncated"):
                reader.read(entry)
            assert isinstance(results[entry.offset], RecordAuthError)
    assert reader.file_blake3 == blake3.blake3(raw[:keep]).digest()


def test_tail_replaced_by_zeros(storage):
    messages = [os.urandom(3000) for _ in range(3)]
    info = build(storage, messages)
    path = file_of(storage, info.name)
    raw = bytearray(path.read_bytes())
    start = len(raw) - 4096
    raw[start:] = bytes(4096)
    path.write_bytes(bytes(raw))
    reader = PackReader(storage, info.name, KEY, UUID1)
    with pytest.raises(PackFormatError):
        reader.index()
    damaged = [e.offset + e.length > start for e in info.entries]
    assert damaged == [False, True, True]
    for entry, message, bad in zip(info.entries, messages, damaged):
        if bad:
            with pytest.raises(RecordAuthError):
                reader.read(entry)
        else:
            assert reader.read(entry) == message


# ------------------------------------------------------- segments (K2) and records


@pytest.fixture(scope="module")
def sealed_big(big):
    key = pack_key(KEY, UUID1, b"\x99" * 16)
    record, csize = seal_record(key, UUID1, sha(big), big)
    return key, record, csize


def _segments(record: bytes, csize: int) -> list[bytes]:
    out, pos, left = [], 0, csize
    while left > 0:
        n = min(SEGMENT_PLAIN, left) + 28
        out.append(record[pos : pos + n])
        pos, left = pos + n, left - (n - 28)
    return out


def test_big_record_opens(sealed_big, big):
    key, record, csize = sealed_big
    assert len(_segments(record, csize)) == 3
    assert open_record(key, UUID1, sha(big), len(big), csize, record) == big


@pytest.mark.parametrize("change", ["reorder", "duplicate", "drop last", "cut last", "append", "other pack key", "other archive"])
def test_segment_tampering_fails(sealed_big, big, change):
    key, record, csize = sealed_big
    s = _segments(record, csize)
    uuid = UUID1
    if change == "reorder":
        record = s[1] + s[0] + s[2]
    elif change == "duplicate":
        record = s[0] + s[0] + s[2]
    elif change == "drop last":
        record, csize = s[0] + s[1], 2 * SEGMENT_PLAIN
    elif change == "cut last":
        record = record[:-1]
    elif change == "append":
        record = record + s[2]
    elif change == "other pack key":
        key = pack_key(KEY, UUID1, b"\x98" * 16)
    elif change == "other archive":
        uuid = UUID2
    with pytest.raises(RecordAuthError, match="authentication failed"):
        open_record(key, uuid, sha(big), len(big), csize, record)


# ------------------------------------------------------------ create-only, verify


def test_sealing_onto_an_existing_name_fails_and_leaves_no_temp(storage):
    pack_id = b"\xab" * 16
    first = build(storage, [b"first"], pack_id=pack_id)
    before = file_of(storage, first.name).read_bytes()
    w = PackWriter(storage, KEY, UUID1, pack_id=pack_id)
    w.add(sha(b"second"), b"second")
    with pytest.raises(ObjectExistsError):
        w.seal()
    assert file_of(storage, first.name).read_bytes() == before
    assert [p.name for p in file_of(storage, first.name).parent.iterdir()] == [f"{pack_id.hex()}.pack"]


class CountingStorage(LocalStorage):
    opens = 0

    def open_read(self, name):
        self.opens += 1
        return super().open_read(name)


def test_verify_all_reports_the_one_bad_record_in_one_pass(tmp_path):
    storage = CountingStorage(tmp_path / "m")
    messages = [b"one" * 100, os.urandom(5000), b"three" * 100, b""]
    info = build(storage, messages)
    e = info.entries[1]
    flip(file_of(storage, info.name), e.offset + 12 + 7)
    reader = PackReader(storage, info.name, KEY, UUID1)
    results = list(reader.verify_all())
    assert storage.opens == 1
    assert [entry for entry, _ in results] == info.entries
    errors = [err for _, err in results]
    assert errors[0] is None and errors[2] is None and errors[3] is None
    assert isinstance(errors[1], RecordAuthError) and "record 1" in str(errors[1])
    assert reader.file_blake3 == blake3.blake3(file_of(storage, info.name).read_bytes()).digest()
    assert isinstance(errors[1], IntegrityError)


def test_take_from_reseals_records_under_the_new_pack(storage, big):
    """A moved record is sealed again under the target pack's key: it reads back there, byte for byte, and
    the copy is no longer the source's ciphertext (a raw copy would fail authentication in the new pack)."""
    mails = [os.urandom(3000), b"Subject: x\r\n\r\n" + b"text " * 4000, big]
    src = build(storage, mails)
    reader = PackReader(storage, src.name, KEY, UUID1)
    w = PackWriter(storage, KEY, UUID1)
    w.add(sha(b"already here"), b"already here")
    moved = w.take_from(reader, [src.entries[2], src.entries[0]])   # any order in; offset order out
    info = w.seal()
    assert [moved[sha(m)].size for m in (mails[0], big)] == [len(mails[0]), len(big)]
    assert moved[sha(mails[0])].offset < moved[sha(big)].offset
    target = PackReader(storage, info.name, KEY, UUID1)
    assert target.index() == info.entries and len(info.entries) == 3
    assert target.read(moved[sha(mails[0])]) == mails[0]
    assert target.read(moved[sha(big)]) == big
    old_raw = file_of(storage, src.name).read_bytes()
    new_raw = file_of(storage, info.name).read_bytes()
    e_old, e_new = src.entries[0], moved[sha(mails[0])]
    assert old_raw[e_old.offset: e_old.offset + e_old.length] != new_raw[e_new.offset: e_new.offset + e_new.length]


def test_take_from_refuses_a_damaged_source_record(storage):
    src = build(storage, [os.urandom(5000)])
    (entry,) = src.entries
    flip(file_of(storage, src.name), entry.offset + 40)
    w = PackWriter(storage, KEY, UUID1)
    with pytest.raises(RecordAuthError):
        w.take_from(PackReader(storage, src.name, KEY, UUID1), [entry])
    w.abort()
