"""The chunks an import cuts its source into (toolkit/ingest.py ``_Chunks``, docs/architecture.md "The import's
tail"): the same items in the same order as plain :func:`_take` chunking, no chunk beyond its limits, and with
``balance`` the source's rest, once its end is in sight, cut into chunks that shrink (each about half of what is
left, none below an eighth of a full chunk) instead of a full one and a short one."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.ingest import CHUNK, CHUNK_BYTES, RAW_CHUNK_BYTES, TAPER_LEAST, _Chunks, _cost, _take
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


def test_the_rest_of_the_source_is_cut_into_shrinking_chunks():
    items = _items([100] * 25)  # chunks of 10: plainly 10, 10, 5
    assert [len(c) for c in _plain(items, 10, 10_000)] == [10, 10, 5]
    # the rest after the first chunk (15 mails) is the tail: 8 (about half), 4, 2, and the last one
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [10, 8, 4, 2, 1]
    assert [len(c) for c in _cut(items, 10, 10_000, balance=False)] == [10, 10, 5]


def test_the_tail_of_an_import_of_40_kb_mails_ends_in_small_chunks():
    # 20,000 mails of 20-60 KB after an inline first chunk (256 mails, 8 MiB at most), at the import's own limits
    sizes = [20_000 + (i * 7919) % 40_000 for i in range(20_000)]
    items = _items(sizes)
    chunks = _Chunks(items)
    cut = [chunks.take(256, 8 * 2**20)]
    while chunk := chunks.take(CHUNK, CHUNK_BYTES, balance=True):
        cut.append(chunk)
    rest = items[len(cut[0]):]
    plain = _plain(rest, CHUNK, CHUNK_BYTES)
    full = len(plain) - 2  # the chunks before the tail: as plain chunking cuts them
    assert cut[1:1 + full] == plain[:full]
    tail = cut[1 + full:]
    assert [i for c in tail for i in c] == plain[-2] + plain[-1]  # the tail is what was left, in order
    costs = [_cost(c, CHUNK, CHUNK_BYTES) for c in tail]
    assert len(tail) >= 4 and costs == sorted(costs, reverse=True)  # smaller and smaller
    assert costs[0] <= _cost(plain[-2] + plain[-1], CHUNK, CHUNK_BYTES) / 2 + 0.01
    assert costs[-1] <= 1.5 / TAPER_LEAST  # the last task is a small one
    assert all(_bytes(c) <= CHUNK_BYTES + 60_000 for c in cut)


def test_a_source_that_ends_within_its_first_chunk_is_tapered_too():
    items = _items([100] * 10)  # one chunk of 10: three tasks with a pool
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [5, 3, 2]
    assert [len(c) for c in _cut(items, 10, 10_000, balance=False)] == [10]


def test_a_tail_too_small_to_cut_stays_one_chunk():
    items = _items([100] * 3)  # 3 of 4,096 mails and 300 bytes of 64 MiB: less than an eighth of a chunk
    assert [len(c) for c in _cut(items, CHUNK, CHUNK_BYTES, balance=True)] == [3]


def test_a_tail_of_remote_jobs_is_cut_into_two_halves():
    class Job:
        batch_key = "imap"
    items = [SourceMail(None, f"u{i}", size=100, job=Job(), cursor=i) for i in range(25)]
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [10, 8, 7]


def test_a_source_of_whole_chunks_is_tapered_in_its_last_chunk():
    items = _items([100] * 30)
    assert [len(c) for c in _cut(items, 10, 10_000, balance=True)] == [10, 10, 5, 3, 2]


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
    # the chunks before the tail (plain chunking's last two, or its only one) are plain chunking's
    before = max(0, len(plain) - 2)
    assert cut[:before] == plain[:before]
    # each chunk of the tail takes about half of what is left (one item more at most), or the small rest
    left = _cost([i for c in cut[before:] for i in c], n, max_bytes)
    for c in cut[before:]:
        one = max(_cost([i], n, max_bytes) for i in c)
        assert _cost(c, n, max_bytes) <= max(left / 2, 1.5 / TAPER_LEAST) + one + 1e-9
        left -= _cost(c, n, max_bytes)
