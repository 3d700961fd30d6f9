"""seal_record encrypts each segment in place (one buffer, one AESGCM per key): its records must be byte for
byte what the plain recipe gives (docs/formats.md: compress, cut into segments, seal each as nonce ||
AES-GCM(piece, AAD)), on the test corpora, on random bytes, and across segment boundaries."""
from __future__ import annotations

import hashlib
import itertools
from uuid import UUID

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpora import corpora_dir
from toolkit import pack
from toolkit.pack import open_record, pack_key, seal_record

UUID1 = UUID("00000000-0000-4000-8000-000000000001")
KEY = pack_key(bytes(range(32)), UUID1, bytes(16))


def counter_nonces():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def recipe(key: bytes, data: bytes, nonces, segment: int) -> tuple[bytes, int]:
    """The record as docs/formats.md spells it, written out plainly (the code before this change)."""
    blob = hashlib.sha256(data).digest()
    compressed = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=False,
                                          write_dict_id=False).compress(data)
    n = max(1, -(-len(compressed) // segment))
    out = b""
    for i in range(n):
        piece = compressed[i * segment : (i + 1) * segment]
        aad = (b"MAREC\x01" + UUID1.bytes + blob + len(data).to_bytes(8, "big") + i.to_bytes(4, "big")
               + (b"\x01" if i == n - 1 else b"\x00"))
        nonce = nonces(12)
        out += nonce + AESGCM(key).encrypt(nonce, piece, aad)
    return out, len(compressed)


def same(data: bytes, segment: int = pack.SEGMENT_PLAIN) -> None:
    blob = hashlib.sha256(data).digest()
    record, csize = seal_record(KEY, UUID1, blob, data, counter_nonces(), check=False)
    assert (bytes(record), csize) == recipe(KEY, data, counter_nonces(), segment)
    assert open_record(KEY, UUID1, blob, len(data), csize, bytes(record)) == data


def test_corpus_records_are_the_recipe_bytes():
    files = [p for p in sorted(corpora_dir().rglob("*")) if p.is_file()][:400]
    assert len(files) >= 100
    for p in files:
        same(p.read_bytes())


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=5000))
def test_random_records_are_the_recipe_bytes(data):
    same(data)


@given(st.binary(min_size=1, max_size=3000), st.integers(min_value=16, max_value=700))
@settings(max_examples=60, deadline=None)
def test_many_segments_are_the_recipe_bytes(data, segment):
    """Records of several segments (the segment size made small), each sealed at its offset."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack, "SEGMENT_PLAIN", segment)
        same(data + bytes(range(256)) * 8, segment)


def test_another_key_gets_its_own_cipher():
    """The AESGCM kept for the last key is not used for another one."""
    other = pack_key(bytes(range(32)), UUID1, b"\x01" * 16)
    data = b"Subject: x\r\n\r\nbody\r\n"
    blob = hashlib.sha256(data).digest()
    for key in (KEY, other, KEY):
        record, csize = seal_record(key, UUID1, blob, data, counter_nonces())
        assert bytes(record) == recipe(key, data, counter_nonces(), pack.SEGMENT_PLAIN)[0]
