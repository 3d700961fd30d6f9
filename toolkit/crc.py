"""CRC-32 with zlib's polynomial and values (the mbox cursor's and :class:`toolkit.file_region.FileRegion`'s
check, docs/reliability.md A5): python-isal's ``crc32`` when it is installed (a pinned dependency, several
times faster than the system zlib's), else zlib's. Both give the same value for the same bytes and the same
start value (tests/test_crc.py), so a cursor written with one is checked with the other."""
from __future__ import annotations

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - an installation without the wheel
    from zlib import crc32

#: which implementation :func:`crc32` is ("isal" or "zlib")
IMPLEMENTATION = "isal" if crc32.__module__.startswith("isal") else "zlib"

__all__ = ["crc32", "IMPLEMENTATION"]
