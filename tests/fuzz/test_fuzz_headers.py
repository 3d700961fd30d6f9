"""Fuzz target: the header scan and address parsing.

Invariants: ``scan`` and ``prepare`` never raise on any bytes; the archived blob is the
input (unless a journal report was unwrapped); address parsing never raises and
returns (name, address) string pairs; all of them run in linear time on the input
repeated to 64 KiB.
"""
from __future__ import annotations

import hashlib
import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz._support import FUZZ, amplified, assert_linear, mutated, seed_files
from toolkit.headers import MailMeta, _parse_addresses, fallback_scan, scan
from toolkit.prepare import prepare

pytestmark = [pytest.mark.fuzz, pytest.mark.security]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return seed_files("a-mime-edge", limit=80) + seed_files("e-real-corpus", limit=40)


def _check_meta(meta: MailMeta) -> None:
    assert isinstance(meta.defects, list) and all(isinstance(d, str) for d in meta.defects)
    assert len(meta.dedup_key) == 32 and len(meta.body_hash) == 32
    assert all(isinstance(a, str) for a in meta.to + meta.cc + meta.bcc)


@FUZZ
@given(data=st.data())
def test_scan_and_prepare(seeds, data):
    raw = data.draw(mutated(seeds))
    _check_meta(scan(raw))
    _check_meta(fallback_scan(raw))
    p = prepare(raw, None, uuid.UUID(int=0), None)
    if p.data is None:  # not unwrapped: the blob is the input, byte for byte
        assert p.blob_id == hashlib.sha256(raw).hexdigest() and p.size == len(raw)
    head = raw.split(b"\n\n", 1)[0][:4096]
    assert_linear(scan, amplified(head) + b"\n\nbody\n")


ADDRESS_TEXT = st.lists(st.sampled_from(list('abc@.,;:<>()"\\[] \t\r\n=?é') + ["x@host.\"tld\\]\"", ", ", "=?utf-8?q?"]),
                        max_size=80).map("".join)


@FUZZ
@given(value=ADDRESS_TEXT)
@example(value='a@b.c, x@host."tld\\]"')          # the point-6 shape (catastrophic backtracking before)
@example(value='"' * 50 + "a@b")
def test_address_parsing(value):
    defects: list[str] = []
    pairs = _parse_addresses(value, defects)
    assert all(isinstance(n, str) and isinstance(a, str) and a == a.lower() for n, a in pairs)
    assert_linear(lambda v: _parse_addresses(v, []), amplified(value, 4 * 1024))
