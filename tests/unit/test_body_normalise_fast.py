"""The C-speed body normalisation equals the per-line one it replaced (issue 15, point 2).

``reference_normalise_body`` below is the implementation of archive format v1 (split into
lines, rstrip each, join), kept here as the reference. ``normalise_body``, the one-shot
``hash_body`` and the streamed ``BodyHasher`` must give the same bytes / the same BLAKE3 for
every body: the corpora's real mails, random bytes, and bodies built from the characters the
rules are about, cut into chunks anywhere (a CR ending one chunk and its LF starting the next,
a run of blanks split across chunks, a chunk of nothing but blanks or newlines).
"""
from __future__ import annotations

import blake3
import pytest
from hypothesis import given, settings, strategies as st

from tests.corpora import corpora_dir
from toolkit.headers import BodyHasher, hash_body, normalise_body, split_offsets


def reference_normalise_body(body: bytes) -> bytes:
    """Format v1's normalise_body: CRLF -> LF, each line right-stripped of spaces and tabs, trailing LFs gone."""
    if b"\r\n" in body:
        body = body.replace(b"\r\n", b"\n")
    body = b"\n".join([line.rstrip(b" \t") for line in body.split(b"\n")])
    return body.rstrip(b" \t").rstrip(b"\n")


def reference_hash(body: bytes) -> bytes:
    return blake3.blake3(reference_normalise_body(body)).digest()


def streamed(body: bytes, cuts) -> bytes:
    h = BodyHasher()
    pos = 0
    for c in sorted({c % (len(body) + 1) for c in cuts}):
        h.update(body[pos:c])
        pos = c
    h.update(body[pos:])
    return h.digest()


def check(body: bytes, cuts=()) -> None:
    want = reference_normalise_body(body)
    assert normalise_body(body) == want
    assert hash_body(body) == blake3.blake3(want).digest()
    assert hash_body(b"Subject: x\r\n\r\n" + body, 14) == blake3.blake3(want).digest()
    assert streamed(body, cuts) == blake3.blake3(want).digest()


PIECES = st.sampled_from([b"a", b"xyz", b" ", b"  ", b"\t", b"\n", b"\r", b"\r\n", b" \r\n", b"\t\n",
                          b" \t \n", b"\n\n", b"\r\r\n", b"\xff", b"\x00", b"-- \n"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(PIECES, max_size=80).map(b"".join), st.lists(st.integers(0, 400), max_size=10))
def test_equals_the_reference_on_bodies_of_the_rule_characters(body, cuts):
    check(body, cuts)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_equals_the_reference_on_random_bytes(body, cuts):
    check(body, cuts)


@pytest.mark.parametrize("body", [
    b"", b"\n", b"\r", b"\r\n", b" ", b"\t", b"a\r", b"a \r", b"a\r \n", b"a\r\r\n", b"\n\na", b"a\n \t",
    b"x" * 70_000 + b" " * 70_000 + b"\r\n" + b"\t" * 5000,          # blank runs longer than the tail probe
    b"line  \r\n" * 20_000 + b"\n" * 10_000 + b" " * 100_000,         # a huge blank tail
    b" \n" * 50_000, b"\t\n" * 50_000, b" \t\r\n" * 30_000,          # every line needs work
])
def test_edge_cases_and_chunk_boundaries(body):
    cut_sets = [[], [1], [len(body) - 1], list(range(0, len(body), 7))[:3000], list(range(1, len(body), 4096))]
    for cuts in cut_sets:
        check(body, cuts)


def test_a_cr_ending_a_chunk_whose_lf_starts_the_next():
    body = b"one  \r\ntwo\t\r\n\r\nthree \r"
    for cut in range(len(body) + 1):
        assert streamed(body, [cut]) == reference_hash(body), cut
        assert streamed(body, [cut, cut + 1, cut + 2]) == reference_hash(body), cut


def test_equals_the_reference_on_every_corpus_mail():
    root = corpora_dir()
    n = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size > 8 << 20 or path.suffix in (".md", ".tsv", ".pst", ".msg"):
            continue
        raw = path.read_bytes()
        start = split_offsets(raw)[1]
        want = reference_hash(raw[start:])
        assert hash_body(raw, start) == want, path
        assert streamed(raw[start:], [1 << 16, 1 << 20, len(raw) // 2]) == want, path
        n += 1
    assert n > 1000
