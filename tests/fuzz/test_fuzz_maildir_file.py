"""Fuzz target: a Maildir message file stored compressed (importers/maildir_file.py).

Invariants, for real messages compressed as Dovecot's zlib plugin writes them (gzip, bzip2, xz, zstd, Dovecot's LZ4
framing), cut anywhere and sprinkled with flipped bytes: :func:`decompressed` never raises; an untouched file gives
the message exactly, with the note beside the flags; any other answer is an error or, with flipped bytes, a changed
message (zstd and LZ4 carry no checksum here), never a message cut short from a cut file (Dovecot's LZ4 framing has
no end marker: there the name's size, ``,S=``, tells it).
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers.maildir_file import compression, decompressed, note
from tests.fuzz._support import FUZZ, seed_files
from tests.unit.test_maildir_file import KINDS
from toolkit.prepare import NotMail, Trimmed

pytestmark = [pytest.mark.fuzz, pytest.mark.security]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return seed_files("b-mbox-maildir", limit=20, pick=lambda p: b"\n\n" in p.read_bytes()[:65536])


@FUZZ
@given(st.data())
def test_a_cut_or_damaged_compressed_message_file_is_an_error_never_a_shorter_mail(seeds, data):
    original = data.draw(st.sampled_from(seeds))
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    blob = bytearray(KINDS[kind](original))
    cut = data.draw(st.integers(1, len(blob)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, len(blob) - 1)), st.integers(1, 255)), max_size=3))
    for at, x in flips:
        blob[at] ^= x
    touched = bool(flips) or cut < len(blob)
    raw = bytes(blob[:cut])
    sized = data.draw(st.booleans())  # the name gives the message's size (Dovecot's ,S=) or not
    got = decompressed(("\\Seen",), len(original) if sized else None, raw)
    if not touched:
        assert isinstance(got, Trimmed) and got.raw == original
        assert got.note == {"flags": (f"\\Seen {note(kind)}",)}
        return
    if compression(raw[:16]) is None:  # the magic itself was cut or flipped: a plain file, left as it is
        if sized and len(raw) != len(original):  # (noted when its size is not the name's)
            assert isinstance(got, Trimmed) and got.raw == raw and "size-differs-from-name" in got.note["flags"][0]
        else:
            assert got is None
        return
    assert isinstance(got, (NotMail, Trimmed))
    if isinstance(got, NotMail):
        assert got.error and "not archived" in got.reason
    elif sized or kind != "dovecot-lz4":  # a cut file is never a shorter message (LZ4: with the name's size)
        assert got.raw == original or flips
