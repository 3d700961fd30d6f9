"""The streamed body hash equals the one-shot hash for any body and any chunking (large mails, K1)."""
from __future__ import annotations

import blake3

from hypothesis import given, settings, strategies as st

from toolkit.headers import BodyHasher, normalise_body

ALPHABET = st.sampled_from([b"a", b" ", b"\t", b"\n", b"\r", b"\r\n", b"x y", b"\n\n", b" \r\n"])


def _streamed(body: bytes, cuts: list[int]) -> bytes:
    h = BodyHasher()
    pos = 0
    for c in sorted(set(c % (len(body) + 1) for c in cuts)):
        h.update(body[pos:c])
        pos = c
    h.update(body[pos:])
    return h.digest()


@settings(max_examples=500, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map(b"".join), st.lists(st.integers(0, 200), max_size=8))
def test_streamed_equals_one_shot(body, cuts):
    assert _streamed(body, cuts) == blake3.blake3(normalise_body(body)).digest()


def test_examples():
    for body in [b"", b"\n", b"a \r\n\r\n", b"\n\na", b"a\r", b"a\n \t", b"x" * 100000 + b" \r\n" * 3]:
        for cuts in ([], [1], [1, 2, 3], list(range(0, len(body), 7))):
            assert _streamed(body, cuts) == blake3.blake3(normalise_body(body)).digest(), (body[:20], cuts)
