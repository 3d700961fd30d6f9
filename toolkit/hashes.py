"""The archive's hash choices, in one place (docs/formats.md "Hashes"; archive format v2).

* **Blob id** = SHA-256 of the mail's bytes. Evidence bundles are checked with
  ``sha256sum`` and RFC 3161 tooling, and the Merkle leaves of the stamps are
  built over it: it stays SHA-256. The import computes it in batches by the faster of OpenSSL's
  SHA-256 and a multi-buffer one (toolkit/blob_ids.py); the digest is the same.
* **Body hash** (dedup, over the normalised body) = BLAKE3, 32 bytes.
* **File checksums** of packs, catalog backups and every copy of them
  (mirror, consolidate, move, restore, verify) = BLAKE3, 32 bytes, in hex.

BLAKE3 runs several times faster than SHA-256 on one core, on CPUs with and
without SHA extensions (bench/RESULTS.md). ``tests/integration/test_hash_choices.py``
pins these choices.
"""
from __future__ import annotations

from typing import BinaryIO

import blake3


def body_hasher():
    """A BLAKE3 hasher for the normalised body (single-threaded: workers already run in parallel)."""
    return blake3.blake3()


def checksum_hasher():
    """A BLAKE3 hasher for whole files (packs, backups) and the copies made of them."""
    return blake3.blake3()


def checksum(data) -> str:
    """The hex BLAKE3 checksum of bytes held in memory."""
    return blake3.blake3(data).hexdigest()


def stream_checksum(f: BinaryIO, chunk: int = 8 << 20) -> tuple[str, int]:
    """(BLAKE3 hex, bytes) of what ``f`` yields from its position to its end, read into one reused
    buffer (a fresh multi-MiB bytes object per read costs page faults that show in the hash rate)."""
    h = blake3.blake3()
    buf = bytearray(chunk)
    view = memoryview(buf)
    n = 0
    while k := f.readinto(buf):
        h.update(view[:k])
        n += k
    return h.hexdigest(), n
