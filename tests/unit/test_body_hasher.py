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


@settings(max_examples=500, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map(b"".join), st.lists(st.integers(0, 200), max_size=8))
def test_streamed_equals_one_shot_when_long_lines_are_flushed(body, cuts):
    """The same with the long-line flush on for every line longer than 3 bytes."""
    import toolkit.headers as headers

    old = headers._CARRY_LIMIT
    headers._CARRY_LIMIT = 3
    try:
        assert _streamed(body, cuts) == blake3.blake3(normalise_body(body)).digest()
    finally:
        headers._CARRY_LIMIT = old


def test_a_body_without_newlines_is_not_carried_whole():
    """A 32 MB body with no newline fed in 64 KB chunks: the held-back tail stays small (copying the
    whole line again with every chunk made streaming quadratic), and the hash is still the one-shot hash."""
    chunk = (b"QUJD" * 16384)  # 64 KB of base64-like text, no newline
    h = BodyHasher()
    largest = 0
    for _ in range(512):
        h.update(chunk)
        largest = max(largest, len(h._carry))
    h.update(b"  \r")
    assert largest <= 2 * len(chunk), largest
    assert h.digest() == blake3.blake3(normalise_body(chunk * 512 + b"  \r")).digest()
