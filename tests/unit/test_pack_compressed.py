"""PackWriter.add_compressed (toolkit/pack.py): a record sealed straight into the writer's block is the record
seal_record makes, and a pack written so is byte for byte the pack written record by record (the same nonces),
whatever the sizes: records across block ends, of a block's size or more, of more than one segment."""
from __future__ import annotations

import hashlib
import itertools
import os
from uuid import UUID

import blake3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from toolkit.pack import SEGMENT_PLAIN, WRITE_BLOCK, PackReader, PackWriter, compress, pack_key, seal_record
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")
PACK_ID = b"\x33" * 16


def counter_nonces():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def _mail(seed: int, size: int, random: bool) -> bytes:
    """``size`` bytes: random (compresses to more than its size) or text-like (compresses well)."""
    if random:
        return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)
    line = b"Received: from host%d.example.org by mx.example.net; %d\r\n" % (seed, seed * 7919)
    return (line * (size // len(line) + 1))[:size]


def _both(root, mails: list[bytes]) -> tuple[bytes, bytes]:
    """The pack written with add_compressed and the one written with seal_record + add_sealed."""
    files = []
    for how in ("compressed", "sealed"):
        storage = LocalStorage(root / how)
        nonces = counter_nonces()
        w = PackWriter(storage, KEY, UUID1, pack_id=PACK_ID, nonce_source=nonces)
        key = pack_key(KEY, UUID1, PACK_ID)
        for m in mails:
            blob = hashlib.sha256(m).digest()
            if how == "compressed":
                entry = w.add_compressed(blob, compress(m), len(m))
            else:
                record, csize = seal_record(key, UUID1, blob, m, nonces, check=False)
                entry = w.add_sealed(blob, record, len(m), csize)
            assert entry.length == w.size - entry.offset
        info = w.seal()
        raw = (storage.root / info.name).read_bytes()
        assert (info.bytes, info.blake3) == (len(raw), blake3.blake3(raw).digest())
        reader = PackReader(storage, info.name, KEY, UUID1)
        assert [reader.read(e) for e in reader.index()] == mails
        files.append(raw)
    return files[0], files[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 90_000), st.booleans()), min_size=1, max_size=60))
@example([(WRITE_BLOCK - 60, True), (10, False), (WRITE_BLOCK - 28, True), (WRITE_BLOCK - 29, True), (5, True)])
@example([(40_000, True)] * 30 + [(WRITE_BLOCK + 5, True)] + [(40_000, True)] * 30)
def test_records_sealed_into_the_block_are_the_records_of_seal_record(tmp_path_factory, sizes):
    seen: set[bytes] = set()
    mails = []
    for i, (size, random) in enumerate(sizes):
        m = _mail(i, size, random)
        if hashlib.sha256(m).digest() not in seen:  # a pack holds a blob once
            seen.add(hashlib.sha256(m).digest())
            mails.append(m)
    compressed, sealed = _both(tmp_path_factory.mktemp("p"), mails)
    assert compressed == sealed


def test_a_record_of_more_than_one_segment_is_sealed_as_seal_record_seals_it(tmp_path):
    big = os.urandom(SEGMENT_PLAIN + 1000)  # random: its compressed bytes take two segments
    assert len(compress(big)) > SEGMENT_PLAIN
    compressed, sealed = _both(tmp_path, [b"small one", big, b"after it"])
    assert compressed == sealed
