"""The chunks an import cuts its source into (toolkit/ingest.py ``_Chunks``, bench/RESULTS.md "Pipeline overlap"):
the same items in the same order as plain :func:`_take` chunking, no chunk beyond its limits, and with
``balance`` the source's last two chunks cut even instead of a full one and a short one."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.ingest import RAW_CHUNK_BYTES, _Chunks, _take
from toolkit.source import SourceMail, SourceSkip


def _items(sizes: list[int], raw: bool = False) -> list:
    out = []
    for i, size in enumerate(sizes):
        if size < 0:  # not a mail: listed in its place
            out.append(SourceSkip(f"skip{i}", "a FIFO", cursor=i))
        elif raw:
            out.append(SourceMail(b"x" * size, f"m{i}", cursor=i))
        else:
            out.append(SourceMail(None, f"m{i}", size=size, path=b"/nowhere", cursor=i))
    return out


def _cut(items: list, n: int, max_bytes: int, balance: bool) -> list[list]:
    chunks, out = _Chunks(items), []
    while chunk := chunks.take(n, max_bytes, balance=balance):
        out.append(chunk)
    return out


def _plain(items: list, n: int, max_bytes: int) -> list[list]:
    it, out = iter(items), []
    while chunk := _take(it, n, max_bytes):
        out.append(chunk)
    return out


def _bytes(chunk: list) -> int:
    return sum(i.length for i in chunk if isinstance(i, SourceMail))


def test_the_last_full_chunk_and_the_short_rest_become_two_even_halves():
    items = _items([100] * 25)  # chunks of 10: plainly 10, 10, 5
    assert [len(c) for c in _plain(items, 10, 10_000)] == [10, 10, 5]
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [10, 8, 7]
    assert [len(c) for c in _cut(items, 10, 10_000, balance=False)] == [10, 10, 5]


def test_a_source_of_whole_chunks_is_cut_as_before():
    items = _items([100] * 30)
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [10, 10, 10]


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(min_value=-1, max_value=5_000), max_size=120),
       n=st.integers(min_value=1, max_value=20), max_bytes=st.integers(min_value=1, max_value=30_000),
       raw=st.booleans())
def test_balanced_chunks_keep_every_item_in_order_within_the_limits(sizes, n, max_bytes, raw):
    items = _items(sizes, raw)
    plain = _plain(items, n, max_bytes)
    cut = _cut(items, n, max_bytes, balance=True)
    assert [i for c in cut for i in c] == items  # the same items, in the source's order
    assert all(cut)
    largest = max((_bytes(c) for c in plain), default=0)
    assert all(len(c) <= n for c in cut)
    assert all(_bytes(c) <= largest for c in cut)  # no chunk holds more mail than plain chunking's largest
    if raw:
        assert all(_bytes(c) < RAW_CHUNK_BYTES + 5_000 for c in cut)
    # only the last two chunks may differ from plain chunking, and only as a re-cut of the same items
    assert cut[:-2] == plain[:-2] and len(cut) == len(plain)
    if len(plain) >= 2 and cut[-2:] != plain[-2:]:
        assert abs(_bytes(cut[-2]) - _bytes(cut[-1])) <= abs(_bytes(plain[-2]) - _bytes(plain[-1]))
