"""The streamed seal and open of large sealed objects (toolkit/crypto.py ``SealWriter``, ``BlobReader``): the same
bytes as ``seal_blob`` with the same nonce (docs/formats.md "Sealed objects"), whatever the pieces; what
``open_blob`` opens they open, and what it refuses they refuse — a flipped byte anywhere, a truncated or missing
tag, another context or key — only at the end, after the tag was checked."""
from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import crypto
from toolkit.errors import IntegrityError

KEY = bytes(range(32))
CONTEXT = b"db-backup:2026-12-05T000000.000000Z-full.dbk"


def nonces(start: int = 1):
    counter = itertools.count(start)
    return lambda n: next(counter).to_bytes(n, "big")


def streamed_seal(data: bytes, pieces: list[int], context: bytes = CONTEXT) -> bytes:
    out = io.BytesIO()
    w = crypto.SealWriter(KEY, context, out.write, nonces())
    at = 0
    for n in pieces:
        w.write(data[at : at + n])
        at += n
    w.write(memoryview(data)[at:])
    assert w.finish() == len(out.getvalue())
    return out.getvalue()


def streamed_open(sealed: bytes, size: int = crypto.STREAM_CHUNK, context: bytes = CONTEXT, key: bytes = KEY) -> bytes:
    """Everything read, then verify(): raises IntegrityError like open_blob."""
    r = crypto.BlobReader(key, io.BytesIO(sealed).read, context, what="catalog backup x")
    got = bytearray()
    while chunk := r.read(size):
        got += chunk
    r.verify()
    assert r.verified
    return bytes(got)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=4000), st.lists(st.integers(min_value=0, max_value=900), max_size=8),
       st.integers(min_value=1, max_value=600))
def test_a_streamed_seal_is_seal_blob_s_bytes_and_opens_both_ways(data, pieces, size):
    sealed = streamed_seal(data, pieces)
    assert sealed == crypto.seal_blob(KEY, data, CONTEXT, nonces())
    assert crypto.open_blob(KEY, sealed, CONTEXT) == data
    assert streamed_open(sealed, size) == data


def test_across_the_chunk_size(monkeypatch):
    """Several update_into pieces per write (the chunk made small) and plaintexts across a megabyte."""
    for n in (crypto.STREAM_CHUNK - 1, crypto.STREAM_CHUNK, crypto.STREAM_CHUNK + 17, 3 * crypto.STREAM_CHUNK + 5):
        data = bytes(i % 251 for i in range(n))
        sealed = streamed_seal(data, [n // 3, 5])
        assert sealed == crypto.seal_blob(KEY, data, CONTEXT, nonces())
        assert streamed_open(sealed) == data
    monkeypatch.setattr(crypto, "STREAM_CHUNK", 7)
    data = bytes(range(256)) * 3
    sealed = streamed_seal(data, [100, 1, 300])
    assert sealed == crypto.seal_blob(KEY, data, CONTEXT, nonces())
    assert streamed_open(sealed, 5) == data


SEALED = crypto.seal_blob(KEY, bytes(range(256)) * 40, CONTEXT, nonces())


@pytest.mark.parametrize("at", [0, 7, 8, 19, 20, 21, 5000, len(SEALED) - 17, len(SEALED) - 16, len(SEALED) - 1])
def test_a_flipped_byte_is_refused(at):
    bad = bytearray(SEALED)
    bad[at] ^= 0x01
    with pytest.raises(IntegrityError) as old:
        crypto.open_blob(KEY, bytes(bad), CONTEXT, what="catalog backup x")
    with pytest.raises(IntegrityError) as new:
        streamed_open(bytes(bad))
    assert str(new.value) == str(old.value)  # bad magic (the first 8 bytes) or authentication failed


@pytest.mark.parametrize("cut", [1, 15, 16, 17, 1000, len(SEALED) - 20, len(SEALED) - 9])
def test_a_truncated_tag_or_object_is_refused(cut):
    with pytest.raises(IntegrityError, match="authentication failed"):
        crypto.open_blob(KEY, SEALED[:-cut], CONTEXT, what="catalog backup x")
    with pytest.raises(IntegrityError, match="authentication failed"):
        streamed_open(SEALED[:-cut])


def test_a_wrong_context_or_key_is_refused():
    for context, key in ((CONTEXT + b"x", KEY), (b"db-backup:other.dbk", KEY), (CONTEXT, bytes(32))):
        with pytest.raises(IntegrityError, match="authentication failed"):
            streamed_open(SEALED, context=context, key=key)


def test_nothing_is_verified_before_the_end_and_a_reader_stopped_early_verifies_the_rest():
    bad = bytearray(SEALED)
    bad[-1] ^= 0x80  # the tag: every plaintext byte decrypts as it was
    r = crypto.BlobReader(KEY, io.BytesIO(bytes(bad)).read, CONTEXT)
    first = r.read(100)
    assert first and (bytes(range(256)) * 40).startswith(first) and not r.verified
    with pytest.raises(IntegrityError, match="authentication failed"):
        r.verify()
    assert not r.verified
    ok = crypto.BlobReader(KEY, io.BytesIO(SEALED).read, CONTEXT)
    ok.read(10)
    ok.verify()  # reads and checks what the caller did not
    assert ok.verified and ok.read(10) == b""


def test_not_a_sealed_object():
    for blob in (b"", b"MASEAL0", b"NOTSEAL1" + SEALED[8:]):
        with pytest.raises(IntegrityError, match="bad magic"):
            streamed_open(blob)
