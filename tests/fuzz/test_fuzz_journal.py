"""Fuzz target: journal report unwrapping.

Invariants: ``unwrap`` never raises; a mail that is not unwrapped is archived as it
came (the same bytes object, no envelope); an unwrapped one yields bytes and an
envelope whose recipients are (kind, address) strings; time is linear in the input
with its envelope part repeated to 64 KiB.
"""
from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz._support import FUZZ, amplified, assert_linear, mutated, seed_files
from toolkit.prepare import unwrap

pytestmark = [pytest.mark.fuzz, pytest.mark.security]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return seed_files("c-exchange-journal", limit=20, max_bytes=1 << 20)


def _check(raw: bytes) -> None:
    data, envelope, defects = unwrap(raw)
    assert isinstance(data, bytes) and all(isinstance(d, str) for d in defects)
    if envelope is None:
        assert data is raw or "journal-unwrapped" not in defects
    else:
        assert all(isinstance(k, str) and isinstance(a, str) for k, a in envelope.recipients)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_unwrap(seeds, data):
    # the example: an envelope line of 20,000 address characters without "@" (quadratic before)
    raw = (b"X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
           b"Sender: a@b\nTo: " + b"a" * 20000 + b"\n--b--\n") if data is None else data.draw(mutated(seeds))
    _check(raw)
    body = raw.find(b"\n\n")
    if body > 0:  # repeat the part after the header block: envelope lines, MIME parts
        assert_linear(unwrap, raw[:body + 2] + amplified(raw[body + 2:body + 4098]))
