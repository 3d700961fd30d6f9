"""Fuzz target: the mbox splitter.

Invariants: splitting never raises; no byte is lost or added: the prefix before the
first From_ line, then each message's From_ line + archived bytes + separator, in
order, give back the input exactly (variant mboxo: nothing is unquoted); offsets are
contiguous; small read blocks give the same split as large ones; time is linear in the
input repeated to 64 KiB.
"""
from __future__ import annotations

import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importers.mbox import MboxSplitter
from tests.fuzz._support import FUZZ, amplified, assert_linear, mutated, seed_files

pytestmark = [pytest.mark.fuzz, pytest.mark.security]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return seed_files("b-mbox-maildir", limit=60, pick=lambda p: p.read_bytes()[:5] == b"From ")


def _split(data: bytes, block: int = 1 << 20):
    sp = MboxSplitter(io.BytesIO(data), "mboxo", block=block)
    return sp, list(sp)


def _check(data: bytes) -> None:
    sp, msgs = _split(data)
    rebuilt = data[:sp.prefix_length] + b"".join(m.from_line + m.raw + m.separator for m in msgs)
    assert rebuilt == data
    pos = sp.prefix_length
    for m in msgs:
        assert m.offset == pos and data[m.offset:m.end_offset] == m.from_line + m.raw + m.separator
        pos = m.end_offset
    _, small = _split(data, block=64)
    assert [(m.offset, m.raw) for m in small] == [(m.offset, m.raw) for m in msgs]


@FUZZ
@given(data=st.data())
@example(data=None)
def test_split_accounts_for_every_byte(seeds, data):
    raw = (b"From a@b Mon Jan  7 09:15:00 2019\nSubject: x\n\n" + b"From" + b" " * 5000 + b"x\n"
           if data is None else data.draw(mutated(seeds)))   # the example: a From_ line of blanks (quadratic before)
    _check(raw)
    assert_linear(lambda d: _split(d), amplified(raw))
