"""Fuzz target: the end of a compressed mbox (importers/stream_end.py).

Invariants, for gzip, bzip2 and xz files of real mbox bytes that are cut anywhere and sprinkled with flipped bytes:
reading never raises (an in-memory file has no I/O error: every failure of the data is an end); ``given`` counts
the bytes handed out; a file only cut short gives a prefix of the original data; an untouched file gives it all,
with no end reported; once ended, reads give nothing.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers.stream_end import EndOfData
from tests.fuzz._support import FUZZ, seed_files
from tests.unit.test_stream_end import read_all

pytestmark = [pytest.mark.fuzz, pytest.mark.security]

_KINDS = {
    "gzip": (lambda d: gzip.compress(d, 1), lambda f: gzip.GzipFile(fileobj=f)),
    "bzip2": (lambda d: bz2.compress(d, 1), lambda f: bz2.BZ2File(f)),
    "xz": (lambda d: lzma.compress(d, preset=0), lambda f: lzma.LZMAFile(f)),
}


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return seed_files("b-mbox-maildir", limit=20, pick=lambda p: p.read_bytes()[:5] == b"From ")


@FUZZ
@given(st.data())
def test_a_cut_or_damaged_compressed_file_ends_and_never_raises(seeds, data):
    original = data.draw(st.sampled_from(seeds)) * data.draw(st.integers(1, 3))
    kind = data.draw(st.sampled_from(sorted(_KINDS)))
    compress, open_ = _KINDS[kind]
    blob = bytearray(compress(original))
    cut = data.draw(st.integers(1, len(blob)))  # a 0-byte file is no compressed file (the import warns: empty)
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, len(blob) - 1)), st.integers(1, 255)), max_size=4))
    for at, x in flips:
        blob[at] ^= x
    touched = bool(flips) or cut < len(blob)
    end = EndOfData(open_(io.BytesIO(bytes(blob[:cut]))))
    try:
        got = read_all(end, data.draw(st.sampled_from([1, 4096, 1 << 20])))
    except (OSError, EOFError) as exc:  # damage in a header the reader checks before any data: not an end it takes
        assert touched and not getattr(exc, "errno", None)
        return
    assert end.given == len(got) and end.read(100) == b""
    if not touched:
        assert got == original and end.stop is None
    elif not flips:
        assert original.startswith(got) and (end.stop is not None or got == original)
