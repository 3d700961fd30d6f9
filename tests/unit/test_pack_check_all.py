"""``PackReader.check_all`` (verify --full's pass, toolkit/pack.py) gives exactly what ``verify_all`` gives with the
same entries: every (entry, error class, error text, record number, blob ids) in order, every decompressed byte
handed to ``on_data``, and the file's BLAKE3 — on clean packs and on packs with bytes flipped anywhere (header,
records, footer index, trailer), cut short, with records swapped, with entries that lie (sizes, lengths,
offsets), and with frames that do not declare their size.
"""
from __future__ import annotations

import hashlib
from uuid import UUID

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.pack import SEAL_OVERHEAD, IndexEntry, PackReader, PackWriter, _aead, _record_aad, pack_key
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")
MAILS = [b"From: a@x.org\r\nSubject: one\r\n\r\n" + b"body %d\r\n" % i * (i * 37 + 1) for i in range(9)]


def _pass(reader: PackReader, method: str, entries):
    seen: list = []
    out = []
    for entry, exc in getattr(reader, method)(entries, on_data=lambda e, chunk: seen.append((e.offset, bytes(chunk)))):
        out.append((entry, None if exc is None else (type(exc).__name__, str(exc), exc.record, exc.blob_id, exc.bound_to)))
    return out, seen, reader.file_blake3


def _same(storage, name, entries):
    a = _pass(PackReader(storage, name, KEY, UUID1), "verify_all", entries)
    b = _pass(PackReader(storage, name, KEY, UUID1), "check_all", entries)
    assert b == a
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
    _same(storage, info.name, entries)


def test_records_bound_to_another_blob_or_size(tmp_path):
    """Authenticated records whose mail is not the blob or the size they are bound to (F03, F02)."""
    storage, info = _pack(tmp_path, bound=True)
    out, _seen, _digest = _same(storage, info.name, info.entries)
    errors = [exc for _e, exc in out[len(MAILS):]]
    assert "bound to another blob id" in errors[0][1]
    assert "zstd frame declares" in errors[1][1] and "decompressed to" in errors[2][1]


def test_short_path_hands_the_whole_mail_once(tmp_path):
    storage, info = _pack(tmp_path)
    _out, seen, _digest = _same(storage, info.name, info.entries)
    assert [c for _o, c in seen] == MAILS
    assert all(e.length == e.csize + SEAL_OVERHEAD for e in info.entries)
