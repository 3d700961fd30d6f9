"""The mbox splitter after its CPU cut (issue 15) splits exactly as before: tests/unit/mbox_reference.py holds
the splitter as it was, and every message field (offset, From_ line, bytes, separator, flags, variant,
CRC-32, unquoted lines, oversized, empty, date) and the prefix and size figures must agree, with and
without ``keep_bytes``, for every variant, read block and cap (docs/reliability.md L1-L9)."""
from __future__ import annotations

import email.utils
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importers.mbox import MboxSplitter, _pop_blank, from_line_date, open_decompressed
from tests.corpora import corpora_dir
from tests.unit import mbox_reference as ref

REPO = Path(__file__).resolve().parents[2]
BLOCKS = (16, 64, 4096, 1 << 20)


def _result(module, data: bytes, variant: str, block: int, max_message: int | None, keep_bytes: bool, base: int):
    kw = {} if module is ref else {"keep_bytes": keep_bytes}
    sp = module.MboxSplitter(io.BytesIO(data), variant, base, block=block, max_message=max_message, **kw)
    msgs = [(m.offset, m.from_line, m.raw, m.end_offset, m.separator, m.flags, m.variant, m.crc32, m.unquoted,
             m.oversized, m.empty, m.date) for m in sp]
    return msgs, (sp.prefix_length, sp.prefix_blank_only, sp.prefix_head, sp.prefix_mmdf, sp.size, sp.quoted_lines)


def assert_same_split(data: bytes, variant: str = "auto", block: int = 1 << 20, max_message: int | None = None,
                      base: int = 0) -> None:
    old_msgs, old_state = _result(ref, data, variant, block, max_message, True, base)
    new_msgs, new_state = _result(importers_mbox, data, variant, block, max_message, True, base)
    assert new_state == old_state
    assert new_msgs == old_msgs
    # without the bytes (a plain local mbox: the worker reads the regions): everything but raw is the same
    lean, lean_state = _result(importers_mbox, data, variant, block, max_message, False, base)
    assert lean_state == old_state
    assert [m[:2] + (b"",) + m[3:] for m in old_msgs] == lean


import importers.mbox as importers_mbox  # noqa: E402  (the module under test, beside the reference)


def _corpus_files() -> list[Path]:
    files = sorted((REPO / "sample_data" / "mbox").glob("*"))
    try:
        root = corpora_dir() / "b-mbox-maildir"
    except pytest.skip.Exception:
        return files
    return files + sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lz"))


def test_the_corpora_split_as_before():
    """Every file of the mbox corpora (decompressed): small and large read blocks, mboxrd unquoting and a small
    cap (the oversized path)."""
    files = _corpus_files()
    assert len(files) >= 2
    for path in files:
        with open(path, "rb") as f:
            data = open_decompressed(f).read()
        assert_same_split(data, "auto", 64)
        assert_same_split(data, "mboxrd", 1 << 20)
        assert_same_split(data, "auto", 4096, max_message=700)


# -- random mbox streams ---------------------------------------------------------------------------------

FROM_LINES = [b"From a@b Mon Jan  7 09:15:00 2019", b"From -", b"From", b"From a@b", b"From  ",
              b"From someone@[10.1.2.3] [host]  Sun Aug  5 09:51:15 2001", b"From x Sat, 5 Jan 2019 10:00 +0100",
              b"From u at host (Name) 2019-01-05 10:00", b"From here on", b"From Russia with love",
              b"\xef\xbb\xbfFrom a Mon Jan 7 09:15 2019", b"From : not a separator", b"From a Feb 30 10:00:00 2019",
              b"From a Mon Jan  7 25:15:00 2019", b"From a Mon Jan  7 09:15:00 0099"]
HEADERS = [b"Subject: x", b"To: a@b", b"X-Mozilla-Status: 0009", b"X-Mozilla-Status: 0001", b" folded",
           b"\tfolded", b"Content-Length: 0", b"Content-Length: 7", b"Content-Length: 40", b"Content-Length: 999999",
           b"From: a@b", b"Bad header line", b"From : Mon Jan  7 09:15:00 2019", b"From  : x"]
BODY = [b"", b"", b"hello", b">From x", b">>From y", b"text >From z", b"\x01\x01\x01\x01", b"From the start",
        b" ", b"x" * 70, b"Content-Length: 3", b"X-Mozilla-Status: 0008"]


@st.composite
def mbox_streams(draw) -> bytes:
    eol = st.sampled_from([b"\n", b"\n", b"\r\n"])
    out = []
    if draw(st.booleans()):
        out.append(draw(st.sampled_from([b"", b"\n", b"garbage\n", b"\x01\x01\x01\x01\n", b"\xef\xbb\xbf"])))
    for _ in range(draw(st.integers(1, 5))):
        parts = [draw(st.sampled_from(FROM_LINES)) + draw(eol)]
        parts += [draw(st.sampled_from(HEADERS)) + draw(eol) for _ in range(draw(st.integers(0, 4)))]
        body = b"".join(draw(st.sampled_from(BODY)) + draw(eol) for _ in range(draw(st.integers(0, 6))))
        if draw(st.booleans()):  # a true Content-Length (consistent when a From_ line or EOF follows)
            parts.append(b"Content-Length: %d\n" % len(body))
        if draw(st.booleans()):
            parts.append(draw(eol))
        parts.append(body)
        if draw(st.booleans()):
            parts.append(draw(eol))
        out.append(b"".join(parts))
    data = b"".join(out)
    if data and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # a partial last message, maybe no final line end
    return data


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=mbox_streams(), variant=st.sampled_from(["auto", "mboxrd", "mboxcl2"]), block=st.sampled_from(BLOCKS),
       cap=st.sampled_from([None, None, 20, 90, 400]), base=st.sampled_from([0, 0, 5]))
def test_random_streams_split_as_before(data, variant, block, cap, base):
    assert_same_split(data, variant, block, cap, base)


def test_a_block_boundary_inside_a_line_keeps_the_lines_of_a_chunk():
    """A line that begins in one block and ends in the next is read with the lines after it as one chunk,
    as before: a header-like body line there is not seen alone (Content-Length and X-Mozilla-Status are
    read from the items before the first empty one; here the headers end without one)."""
    body = b"not a header\n" + b"y" * 30 + b"\nX-Mozilla-Status: 0009\nContent-Length: 2\nmore\n"
    data = b"From a@b Mon Jan  7 09:15:00 2019\nSubject: s\n" + body + b"\nFrom a@b Mon Jan  7 09:15:00 2019\n\nx\n"
    for block in range(8, 80):
        assert_same_split(data, "auto", block)


def test_the_separator_left_inside_the_last_item_counts_once():
    acc = [(0, b"a\n"), (2, b"b\nc\n\n")]
    assert _pop_blank(list(acc), trim=False) == (b"\n", 1)
    trimmed = list(acc)
    assert _pop_blank(trimmed) == (b"\n", 0) and trimmed[-1] == (2, b"b\nc\n")
    crlf = [(0, b"a\r\n\r\n")]
    assert _pop_blank(crlf, trim=False) == (b"\r\n", 2) and crlf == [(0, b"a\r\n\r\n")]


# -- the From_ line's date --------------------------------------------------------------------------------

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "mon", "Xyz", "Monday"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "jan", "Foo"]


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(wd=st.sampled_from(WEEKDAYS), mon=st.sampled_from(MONTHS), day=st.integers(0, 40),
       hh=st.integers(0, 30), mi=st.integers(0, 70), ss=st.integers(0, 70), year=st.integers(0, 10999),
       day_pad=st.sampled_from(["%2d", "%d", "%02d", " %d"]), year_pad=st.sampled_from(["%d", "%04d"]),
       tail=st.sampled_from(["", " ", " +0100", " UTC", "\n", "\r\n", " remote from x"]))
def test_the_usual_from_line_date_reads_as_parsedate_tz_reads_it(wd, mon, day, hh, mi, ss, year, day_pad, year_pad, tail):
    line = ("From a@b %s %s %s %02d:%02d:%02d %s%s" % (wd, mon, day_pad % day, hh, mi, ss, year_pad % year, tail)).encode()
    assert from_line_date(line) == ref.from_line_date(line)
    got = from_line_date(line)
    if got is not None:
        assert got.utcoffset() == ref.from_line_date(line).utcoffset()


def test_the_fast_date_is_parsedate_tz_s_date():
    line = b"From a@b Mon Jan  7 09:15:00 2019\n"
    parsed = email.utils.parsedate_tz("Mon Jan  7 09:15:00 2019")
    got = from_line_date(line)
    assert (got.year, got.month, got.day, got.hour, got.minute, got.second) == parsed[:6]
    assert got.utcoffset().total_seconds() == 0
    assert from_line_date(b"From a@b Mon Feb 30 09:15:00 2019\n") is None  # no such day
    assert from_line_date(b"From a@b Mon Jan  7 09:15:00 0999\n") is None  # before year 1000
