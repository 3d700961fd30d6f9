"""The mbox splitter after its CPU cuts (issue 15) splits exactly as before: tests/unit/mbox_reference.py holds
the splitter as it was, and every message field (offset, From_ line, bytes, separator, flags, variant,
CRC-32, unquoted lines, oversized, empty, date, mail flags, Gmail folders) and the prefix and size figures must
agree, with and without ``keep_bytes``, for every variant, read block and cap (docs/reliability.md L1-L9), on
both paths: the compiled scan of the plain messages (``MboxSplitter._fast``, toolkit/_native.c) and the
line-by-line loop alone (``native=False``, what runs without the compiled module)."""
from __future__ import annotations

import email.utils
import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importers import mbox_scan
from importers.mbox import _UNREAD, MboxSplitter, _plain_date, _pop_blank, from_line_date, is_from_line, open_decompressed
from tests.corpora import corpora_dir
from tests.unit import mbox_reference as ref

REPO = Path(__file__).resolve().parents[2]
BLOCKS = (16, 64, 4096, 1 << 20, 4 << 20)  # 4 MiB: importers.mbox.LOCAL_BLOCK, a plain local mbox's
#: the paths under test: the compiled scan (when built; under CI=true it must be) and the line-by-line loop alone
PATHS = (True, False) if mbox_scan.NATIVE_SCAN else (False,)


def test_the_compiled_scan_is_built_under_ci():
    if os.environ.get("CI") == "true":
        assert mbox_scan.NATIVE_SCAN


def _result(module, data: bytes, variant: str, block: int, max_message: int | None, keep_bytes: bool, base: int,
            native: bool = False):
    kw = {} if module is ref else {"keep_bytes": keep_bytes, "native": native}
    sp = module.MboxSplitter(io.BytesIO(data), variant, base, block=block, max_message=max_message, **kw)
    msgs = [(m.offset, m.from_line, m.raw, m.end_offset, m.separator, m.flags, m.variant, m.crc32, m.unquoted,
             m.oversized, m.empty, m.date) + ((m.mail_flags, m.label_folders) if module is not ref else ()) for m in sp]
    return msgs, (sp.prefix_length, sp.prefix_blank_only, sp.prefix_head, sp.prefix_mmdf, sp.size, sp.quoted_lines)


def assert_same_split(data: bytes, variant: str = "auto", block: int = 1 << 20, max_message: int | None = None,
                      base: int = 0) -> None:
    old_msgs, old_state = _result(ref, data, variant, block, max_message, True, base)
    loop = None   # the mail flags and Gmail folders (younger than the reference): the line-by-line loop's
    for native in PATHS[::-1]:
        new_msgs, new_state = _result(importers_mbox, data, variant, block, max_message, True, base, native)
        assert new_state == old_state
        assert [m[:12] for m in new_msgs] == old_msgs
        if loop is None:
            loop = new_msgs
        assert new_msgs == loop
        # without the bytes (a plain local mbox: the worker reads the regions): everything but raw is the same
        lean, lean_state = _result(importers_mbox, data, variant, block, max_message, False, base, native)
        assert lean_state == old_state
        assert [m[:2] + (b"",) + m[3:] for m in loop] == lean


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
        assert_same_split(data, "auto", importers_mbox.LOCAL_BLOCK)
        assert_same_split(data, "auto", 4096, max_message=700)


# -- random mbox streams ---------------------------------------------------------------------------------

FROM_LINES = [b"From a@b Mon Jan  7 09:15:00 2019", b"From a@b Mon Jan  7 09:15:00 2019", b"From -", b"From",
              b"From a@b", b"From  ", b"From a@b Mon Jan  7", b"From the start of it", b"From: a@b", b"Fromage",
              b"From a@b Mon Jan  7 09:15:00 2019 \x00", b"From a b c d e", b"From x Mon, 7 Jan 2019 09:15",
              b"From someone@[10.1.2.3] [host]  Sun Aug  5 09:51:15 2001", b"From x Sat, 5 Jan 2019 10:00 +0100",
              b"From u at host (Name) 2019-01-05 10:00", b"From here on", b"From Russia with love",
              b"\xef\xbb\xbfFrom a Mon Jan 7 09:15 2019", b"From : not a separator", b"From a Feb 30 10:00:00 2019",
              b"From a Mon Jan  7 25:15:00 2019", b"From a Mon Jan  7 09:15:00 0099"]
HEADERS = [b"Subject: x", b"Subject: x", b"To: a@b", b"X-Mozilla-Status: 0009", b"X-Mozilla-Status: 0001", b" folded",
           b"\tfolded", b"Content-Length: 0", b"Content-Length: 7", b"Content-Length: 40", b"Content-Length: 999999",
           b"From: a@b", b"Bad header line", b"From : Mon Jan  7 09:15:00 2019", b"From  : x", b"Status: RO",
           b"X-Status: AF", b"x-mozilla-keys: $label1 Junk", b"X-Gmail-Labels: Inbox,Work,Starred", b"STATUS : R",
           b"content-length: 3", b"X-Content-Length: 5", b">From : x", b"Sub\x00ject: n", b"Subject: \x00\r",
           b"X: " + b"h" * 300, b":colon first", b"Status:"]
BODY = [b"", b"", b"", b"hello", b">From x", b">>From y", b"text >From z", b"\x01\x01\x01\x01", b"From the start",
        b" ", b"x" * 70, b"Content-Length: 3", b"X-Mozilla-Status: 0008", b"\x00", b"a\x00b", b"\r", b"\x0b\x0c",
        b"y" * 3000, b">", b">From", b"Subject: inside"]


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


PLAIN_HEADERS = [b"Subject: x", b"To: a@b", b"From: a@b", b"Received: by x", b" folded", b"\tfolded", b"Status: RO",
                 b"X-Status: AF", b"X-Mozilla-Status: 0009", b"X-Mozilla-Status: 0005", b"X-Mozilla-Keys: $label1",
                 b"X-Gmail-Labels: Inbox,Work", b"Subject: \x00 nul", b"X-H :\ty", b">From : quoted header",
                 b"Content-Type: text/plain"]
RARE_HEADERS = [b"Content-Length: 3", b"content-LENGTH : 0", b"From : Mon Jan  7 09:15:00 2019", b"Bad header line",
                b" starts folded"]
PLAIN_BODY = [b"", b"text", b"text", b">From x", b"> quoted", b">>From y", b"\x00", b"\x0c", b"\x0b", b" \t", b"\r",
              b"x" * 200, b">From", b">>Fromage", b"a >From b"]
RARE_BODY = [b"From here on", b"From a@b Mon Jan  7 09:15:00 2019", b"Subject: x"]


@st.composite
def plain_streams(draw) -> bytes:
    """Mostly the plain messages the compiled scan takes (a header block ended by an empty line, no Content-Length,
    an empty line before the next From_ line), now and then one of the cases it leaves to the line loop."""
    eol = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n"])
    rare = st.integers(0, 9).map(lambda n: n == 0)
    out = []
    for _ in range(draw(st.integers(1, 8))):
        parts = [draw(st.sampled_from(FROM_LINES[:2] if not draw(rare) else FROM_LINES)) + draw(eol)]
        for _ in range(draw(st.sampled_from([0, 0, 1, 2, 5]))):
            pool = RARE_HEADERS if draw(rare) else PLAIN_HEADERS
            parts.append(draw(st.sampled_from(pool)) + draw(eol))
        if not draw(rare):
            parts.append(draw(eol))
        body = b"".join(draw(st.sampled_from(RARE_BODY if draw(rare) else PLAIN_BODY)) + draw(eol)
                        for _ in range(draw(st.integers(0, 6))))
        if draw(st.integers(0, 3)) == 0:  # a Content-Length, true (mboxcl) or off by one, before the header's end
            cl = b"Content-Length: %d" % (len(body) + draw(st.sampled_from([0, 0, 0, 1, -1, 2])))
            parts.insert(len(parts) - 1 if len(parts) > 1 else 1, cl + draw(eol))
        parts.append(body)
        if not draw(rare):
            parts.append(draw(eol))
        out.append(b"".join(parts))
    data = b"".join(out)
    if draw(rare):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=plain_streams(), variant=st.sampled_from(["auto", "mboxrd", "mboxo", "mboxcl"]),
       block=st.sampled_from(BLOCKS), cap=st.sampled_from([None, None, 30, 120]), base=st.sampled_from([0, 0, 5]))
def test_random_plain_streams_split_as_before(data, variant, block, cap, base):
    assert_same_split(data, variant, block, cap, base)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.one_of(mbox_streams(), plain_streams()), cut=st.integers(0, 10**6))
def test_a_read_block_boundary_at_any_byte_splits_as_before(data, cut):
    """Read blocks of every size from 1 to 64 bytes and one block ending at a random byte: a message is split across
    blocks everywhere (the compiled scan takes only what stands whole in a block; the rest goes the line way)."""
    for block in range(1, 65, 7):
        assert_same_split(data, "auto", block)
    assert_same_split(data, "auto", 1 + cut % (len(data) + 1))


def _plain_mbox(n: int, eol: bytes = b"\n") -> bytes:
    rng = random.Random(n)
    out = []
    for i in range(n):
        head = [b"From a@b Mon Jan  7 09:15:%02d 2019" % (i % 60), b"Subject: m%d" % i, b"To: x@y"]
        if i % 3 == 0:
            head.append(b"Status: RO")
        if i % 5 == 0:
            head += [b"X-Mozilla-Status: 000%d" % (i % 10), b"X-Gmail-Labels: Inbox,F%d" % (i % 4)]
        body = [b"line %d" % rng.randrange(10**6) for _ in range(rng.randrange(0, 12))]
        if i % 4 == 0:
            body.append(b">From the quoted")
        out.append(eol.join(head) + eol + eol + eol.join(body) + (eol if body else b"") + eol)
    return b"".join(out)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_a_plain_mbox_split_at_every_byte_of_a_block_boundary(eol):
    """A plain mbox (what the compiled scan takes) with the first read block ending at every byte of its first
    messages: the message across the boundary, and those after, are the same as before."""
    data = _plain_mbox(6, eol)
    for block in range(1, 400):
        assert_same_split(data, "auto", block)
    for variant in ("mboxrd", "mboxcl"):
        assert_same_split(data, variant, 97)


def test_the_compiled_scan_takes_the_plain_messages():
    """On a plain mbox nearly every message comes from the compiled scan (one call per read block), and they are
    the messages of the line-by-line loop."""
    if not mbox_scan.NATIVE_SCAN:
        if os.environ.get("CI") == "true":
            pytest.fail("toolkit._native is not built (CI must run the compiled mbox scan)")
        pytest.skip("toolkit._native is not built")
    data = _plain_mbox(400)
    sp = MboxSplitter(io.BytesIO(data), block=4096, native=True)
    taken = []
    fast = sp._fast
    sp._fast = lambda start: (lambda got: (taken.extend(got[0]), got)[1])(fast(start))
    msgs = list(sp)
    # all but the last (no From_ line after it) and one for each block boundary
    assert len(msgs) == 400 and len(taken) >= 400 - 1 - (len(data) // 4096 + 1)
    assert_same_split(data, "auto", 4096)


@pytest.mark.parametrize("body", [b"\x0b\n", b"\x0c\r\n", b" \t\n\n", b"\x00\n", b"\x1c\n", b"\r\n", b"\n", b""])
@pytest.mark.parametrize("quote", [b">From\n", b">>Fromage\n", b">From x\n", b"x\n>>From y\n", b""])
def test_empty_bodies_and_quoted_lines_split_as_before(body, quote):
    """A message of nothing but whitespace (``bytes.isspace``: \\x0b and \\x0c too) is empty; a ``>From`` line
    counts as quoted only with its space."""
    for head in (b"", b"Subject: s\n"):
        msg = b"From a@b Mon Jan  7 09:15:00 2019\n" + head + b"\n" + body + quote + b"\n"
        assert_same_split(msg * 3)


@pytest.mark.parametrize("fields", [
    [b"Content-Length: %d"], [b"content-LENGTH :\t%d \r"], [b"Content-Length: %d", b"Content-Length: 1"],
    [b"Content-Length: 1", b"Content-Length: %d"], [b"Content-Length: 0%d"], [b"Content-Length: 00000000000000%d"],
    [b"Content-Length: 000000000000000%d"], [b"Content-Length: %d x"], [b"Content-Length:%d", b" folded"],
    [b" Content-Length: %d"], [b"X-Content-Length: %d"], [b"Content-Length: %d", b"Content-Length: %d"]])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_content_length_fields_split_as_before(fields, eol):
    """Which Content-Length counts (the first that reads as one: up to 15 digits, blanks around, any case), and a
    message whose body it measures exactly (mboxcl), one byte off, or not at all."""
    for body in (b"line one" + eol + b"last" + eol, b"line one" + eol + b"From inside" + eol + b"last" + eol, b""):
        for delta in (0, 1, -1, len(eol)):
            head = b"".join((f % (len(body) + delta) if b"%d" in f else f) + eol for f in fields)
            msg = b"From a@b Mon Jan  7 09:15:00 2019" + eol + b"Subject: s" + eol + head + eol + body + eol
            assert_same_split(msg * 3)
            assert_same_split(msg * 3, "mboxcl2")


def test_huge_lines_and_nul_bytes_split_as_before():
    long_header = b"X-Long: " + b"v" * 200_000 + b"\n"
    data = (b"From a@b Mon Jan  7 09:15:00 2019\n" + long_header + b"Subject: \x00\n\n" + b"\x00" * 5000 + b"\n"
            + b"z" * 300_000 + b"\n\nFrom a@b Mon Jan  7 09:15:00 2019\nSubject: y\n\nbody\n\n") * 2
    for block in (1 << 20, 65536, 4096):
        assert_same_split(data, "auto", block)
        assert_same_split(data, "auto", block, max_message=250_000)


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


# -- the usual From_ line in one match (``_plain_date``: the check of ``_fast`` and the date of ``MboxMessage.date``) --

TAKEN: list[bool] = []  # per example: did the one match take the line (the test below checks it often does)
SENDERS = [b"a@b", b"bench@example.com", b"at", b"-", b"MAILER-DAEMON", b"a@[10.1.2.3]", b"(x)", b"\xc3\xa9@b",
           b"Mon", b"a\tb", b"a\x00b", b"", b"a b", b"a at b"]


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(head=st.sampled_from([b"From "] * 8 + [b"From  ", b"from ", b"From\t", b"\xef\xbb\xbfFrom ", b">From "]),
       sender=st.one_of(*[st.sampled_from(SENDERS)] * 3, st.binary(max_size=12)),
       gap=st.sampled_from([b" "] * 8 + [b"  ", b"\t"]), wd=st.sampled_from(WEEKDAYS[:7] * 3 + WEEKDAYS[7:]),
       mon=st.sampled_from(MONTHS[:12] * 2 + MONTHS[12:]), day=st.integers(0, 40), hh=st.integers(0, 30),
       mi=st.integers(0, 70), ss=st.integers(0, 70), year=st.integers(0, 10999) | st.integers(1000, 9999),
       day_pad=st.sampled_from(["%2d", "%d", "%02d"] * 3 + [" %d", "%3d"]), year_pad=st.sampled_from(["%d", "%04d"]),
       tail=st.sampled_from([b"", b"\n", b"\r\n"] * 4 + [b"\r", b" \n", b"\n\n", b" UTC\n", b" +0100\n", b"\nx",
                             b"\r\r\n"]))
def test_the_usual_from_line_in_one_match_is_what_is_from_line_and_from_line_date_say(
        head, sender, gap, wd, mon, day, hh, mi, ss, year, day_pad, year_pad, tail):
    date = ("%s %s %s %02d:%02d:%02d %s" % (wd, mon, day_pad % day, hh, mi, ss, year_pad % year)).encode()
    line = head + sender + gap + date + tail
    got = _plain_date(line)
    TAKEN.append(got is not _UNREAD)
    if got is _UNREAD:  # not the usual shape: the splitter asks is_from_line and from_line_date themselves
        return
    assert is_from_line(line)
    want = from_line_date(line)
    assert got == want and (got is None) == (want is None)
    if got is not None:
        assert got.utcoffset() == want.utcoffset() and got.tzinfo == want.tzinfo


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(line=st.binary(max_size=60).map(lambda b: b"From " + b) | st.binary(max_size=60))
def test_any_line_the_one_match_takes_is_a_from_line_with_that_date(line):
    got = _plain_date(line)
    if got is not _UNREAD:
        assert is_from_line(line) and got == from_line_date(line)


def test_the_random_from_lines_above_are_often_the_usual_ones():
    if not TAKEN:
        test_the_usual_from_line_in_one_match_is_what_is_from_line_and_from_line_date_say()
    assert sum(TAKEN) >= len(TAKEN) // 20  # the comparison above is not vacuous


def test_the_one_match_takes_the_usual_from_lines_and_nothing_else():
    assert _plain_date(b"From bench@example.com Mon Jan  7 09:15:00 2019\n") == from_line_date(
        b"From bench@example.com Mon Jan  7 09:15:00 2019\n") is not None
    assert _plain_date(b"From a@b Sat Dec 31 23:59:59 2022\r\n").year == 2022
    assert _plain_date(b"From a@b Mon Feb 30 09:15:00 2019\n") is None  # a From_ line, its date no date
    for other in (b"From a@b Mon Jan  7 09:15 2019\n", b"From a@b Mon Jan  7 09:15:00 2019 +0100\n",
                  b"From a@b Mon, 7 Jan 2019 09:15:00\n", b"From -\n", b"From a b Mon Jan  7 09:15:00 2019\n",
                  b"\xef\xbb\xbfFrom a@b Mon Jan  7 09:15:00 2019\n", b"From here on\n"):
        assert _plain_date(other) is _UNREAD
