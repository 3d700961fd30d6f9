"""The compiled scans (toolkit/_native.c) equal their pure-Python references in toolkit/headers.py.

Each native function is compared with its ``_py`` reference on every file of the shared corpora and
the repository's sample data (as a whole and split into header block and body, at the offsets the
import uses) and on hypothesis-random bytes built from what the rules are about: CR, CRLF, tabs and
spaces before LF, NUL, 8-bit bytes, very long lines, no final LF, header names in any case, mbox
From_ lines, continuations. Under CI=true a missing compiled module is a failure, so CI proves that
the fast path is the one that runs (docs/architecture.md, "Compiled scans").
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from tests.corpora import REPO, corpora_dir
from toolkit import headers
from toolkit.headers import split_mail

native = headers._native


@pytest.fixture(autouse=True)
def _need_native():
    if native is None:
        if os.environ.get("CI") == "true":
            pytest.fail("toolkit._native is not built (CI must run the compiled scans): "
                        "run `pip install --no-deps -e .` with a C compiler and the Python headers")
        pytest.skip("toolkit._native is not built (no C compiler at install time)")


def test_the_compiled_scans_are_what_headers_runs():
    assert headers.NATIVE
    assert headers._wanted_fields is native.wanted_fields
    assert headers._has_blank_before_lf is native.has_blank_before_lf
    assert headers._body_marks is native.body_marks
    assert headers._content_end is native.content_end
    assert headers._strip_blanks is native.strip_blanks
    assert headers._crlf_to_lf is native.crlf_to_lf
    assert headers._fast_addresses is headers._fast_addresses_native
    assert headers._native_split is native.split_mail


def check_body(buf: bytes, start: int = 0, stop: int | None = None) -> None:
    """Every body scan of ``buf`` from ``start`` (to ``stop``) equals its reference."""
    stop = len(buf) if stop is None else stop
    end = headers._content_end_py(buf, start, stop)
    assert native.content_end(buf, start, stop) == end
    for a, b in ((start, end), (start, stop), (0, stop), (start, len(buf))):
        assert native.has_blank_before_lf(buf, a, b) == headers._has_blank_before_lf_py(buf, a, b)
        assert native.body_marks(buf, a, b) == headers._body_marks_py(buf, a, b)
        assert native.strip_blanks(buf, a, b) == headers._strip_blanks_py(buf, a, b)
    assert native.crlf_to_lf(buf, start) == headers._crlf_to_lf_py(buf, start) == buf[start:].replace(b"\r\n", b"\n")
    assert native.crlf_to_lf(buf) == buf.replace(b"\r\n", b"\n")
    # the scan's one pass (body hash and NUL check) gives what hash_body and ``in`` give
    assert headers._hash_body_nul(buf, start) == (headers.hash_body(buf, start), b"\0" in buf)


def check_block(block: bytes) -> None:
    assert native.wanted_fields(block) == headers._wanted_fields_py(block)
    check_split(block)


def check_split(raw: bytes) -> None:
    """The compiled split of a mail equals the reference, and so does the one the import runs."""
    want = headers._split_mail_py(raw)
    assert native.split_mail(raw) == tuple(want)
    got = split_mail(raw)
    assert type(got) is headers.Split and got == want and type(got.block) is bytes


def check_addresses(value: str) -> list | None:
    want = headers._fast_addresses_py(value)
    assert headers._fast_addresses_native(value) == want
    if value.isascii():
        assert native.fast_addresses(value) == want
    return want


def check_mail(raw: bytes) -> int:
    """Compare every scan on ``raw``; returns how many address values the fast path read."""
    check_split(raw)
    for cut in (1, 2, 3, 4):   # after a BOM, and the mail's first bytes left out
        check_split(b"\xef\xbb\xbf" + raw[:cut] + raw)
        check_split(raw[cut:])
    split = split_mail(raw)
    check_block(split.block)
    check_block(raw)
    check_body(raw, split.body_start)
    check_body(raw)
    if b"\r\n" in raw:
        lf = raw.replace(b"\r\n", b"\n")
        check_body(lf, split_mail(lf).body_start)
    read = 0
    for name, value in headers._wanted_fields_py(split.block) or ():
        if name in ("from", "to", "cc", "bcc"):
            read += check_addresses(headers._text(headers._unfold(value))) is not None
    return read


def _corpus_files() -> list[Path]:
    roots = [REPO / "sample_data"]
    corpora = corpora_dir()
    roots += [corpora / d for d in ("a-mime-edge", "b-mbox-maildir", "c-exchange-journal", "e-real-corpus")]
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file() and p.stat().st_size < 8 << 20)


def test_equal_to_the_references_on_every_corpus_file():
    files = _corpus_files()
    addresses = sum(check_mail(path.read_bytes()) for path in files)
    assert len(files) > 5000 and addresses > 10_000   # the corpora were there and were read


BODY_PIECES = st.sampled_from([
    b"a", b"xyz", b" ", b"  ", b"\t", b"\n", b"\r", b"\r\n", b" \r\n", b"\t\n", b" \t \n", b"\n\n",
    b"\r\r\n", b"\r \n", b"\xff", b"\xe9t\xe9", b"\x00", b"-- \n", b"\n ", b"\n\t"])


def _long(piece: bytes, most: int = 70_000) -> st.SearchStrategy[bytes]:
    return st.integers(1, most).map(lambda n: piece * n)


BODIES = st.lists(st.one_of(BODY_PIECES, _long(b"x"), _long(b" "), _long(b"\r")), max_size=60).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(BODIES, st.integers(0, 1 << 20), st.integers(0, 1 << 20))
def test_body_scans_equal_the_references_on_bodies_of_the_rule_characters(buf, a, b):
    start, stop = sorted((a % (len(buf) + 1), b % (len(buf) + 1)))
    check_body(buf, start, stop)
    check_body(buf, start)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 3000))
def test_body_scans_equal_the_references_on_random_bytes(buf, start):
    check_body(buf, min(start, len(buf)))
    check_mail(buf)


HEADER_PIECES = st.sampled_from([
    b"From: a@b\n", b"To: c@d,\n e@f\n", b"cc:", b"CC:", b"Bcc:x", b"bCC :", b"Subject:", b"SUBJECT: hi\r\n",
    b"Date: Thu, 16 May 2019 08:16:00 +0000\n", b"Message-ID: <x@y>\n", b"message-id:", b"X-Spam-Flag: YES\n",
    b"x-spam-status:", b"X-MS-Journal-Report:", b"X-Other: 1\n", b"From ", b"From sender Thu\n",
    b"Received: by x\n", b"\n", b"\r\n", b"\r", b" ", b"\t", b"  cont\n", b"\tcont\r\n", b":", b"::",
    b"no colon here\n", b"\xff\xfe", b"\x00", b"\xe9", b"Subject: caf\xc3\xa9\n", b"\n\n", b"x", b"-", b"@"])
BLOCKS = st.lists(st.one_of(HEADER_PIECES, _long(b"a", 5000), _long(b" ", 5000)), max_size=40).map(b"".join)


@settings(max_examples=800, deadline=None)
@given(BLOCKS)
def test_wanted_fields_equals_the_reference_on_blocks_of_header_pieces(block):
    check_block(block)
    check_block(b"From: x\n" + block)
    check_block(b"From sender\n" + block)
    check_mail(block)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=600))
def test_wanted_fields_equals_the_reference_on_random_bytes(block):
    check_block(block)
    check_block(b"Subject: " + block)
    check_block(b"To: x\n " + block + b"\nCc: y\n")


@pytest.mark.parametrize("raw", [
    b"Subject: " + b" " * 3_000_000 + b"\n",                 # one long run of blanks in a value
    b"To: a\n" + b" x\n" * 500_000,                           # half a million continuation lines
    b"X: 1\n" * 100_000 + b"\n" + b" \n" * 300_000,           # many fields; a body of blank lines
    b"\r" * 2_000_000 + b"\n",                               # CRs but one
    b"\r\n" * 1_000_000,                                      # nothing but CRLFs
    b"a \t" * 1_000_000,                                      # blanks and no LF at all
])
def test_equal_on_large_worst_cases(raw):
    check_mail(raw)


@pytest.mark.parametrize("raw", [
    b"", b"\xef\xbb\xbf", b"\xef\xbb", b"\n", b"\r\n", b"\r", b"\xef\xbb\xbf\n", b"\xef\xbb\xbf\r\nX: y\n\n",
    b"From ", b"From x", b"From", b"X: y", b"X : y\n\nb", b"X\t:\n\r\nb", b"X:\r\rbody", b"X:\r\r\nbody", b"X:\n\r\r\n",
    b" a\nX: y\n\n", b" a\r\nX: y\n\n", b" a\r\rX: y\n\n", b" a\nX y\n\n", b" a\n:\n\n", b"\t\nX:", b" a\n", b" ",
    b":x\n\n", b"X y: z\n\n", b"\x00: y\n\n", b"\xff: y\n\n", b"X:\n\n\n", b"X:\n\r", b"X:\n\r\n", b"X:\n\n",
])
def test_the_split_on_edge_cases(raw):
    check_split(raw)
    check_split(raw + b"body\n")
    with pytest.raises(TypeError):
        native.split_mail(bytearray(raw))
    assert split_mail(bytearray(raw)) == headers._split_mail_py(bytearray(raw))   # the reference reads other buffers


def test_buffers_other_than_bytes_and_offsets_out_of_range():
    data = b"Subject: x \nTo: y\n\nbody \t\r\nmore  \n\n"
    for buf in (bytearray(data), memoryview(data)):
        assert native.wanted_fields(buf) == headers._wanted_fields_py(data)
        assert native.strip_blanks(buf, 0, len(data)) == headers._strip_blanks_py(data, 0, len(data))
        assert native.crlf_to_lf(buf, 3) == data[3:].replace(b"\r\n", b"\n")
    # clamped to the buffer, as slicing does
    assert native.content_end(data, -5, 10**9) == headers._content_end_py(data, 0, len(data))
    assert native.strip_blanks(data, 10, 5) == b""
    with pytest.raises(TypeError):
        native.has_blank_before_lf("text", 0, 1)
    with pytest.raises(TypeError):
        native.content_end(data, 0)


def test_blank_before_lf_at_every_position_and_range():
    """The check reads 16 bytes at a time where it can: a blank before a LF anywhere in or at the edge
    of such a block, with every start and end, is found exactly when the reference finds it."""
    for blank in (b" ", b"\t"):
        for at in range(0, 39):
            buf = bytearray(b"x" * 40)
            buf[at:at + 2] = blank + b"\n"
            buf = bytes(buf)
            for start in range(0, 41):
                for end in range(start, 41):
                    assert native.has_blank_before_lf(buf, start, end) == \
                        headers._has_blank_before_lf_py(buf, start, end), (at, start, end)


def test_body_marks_at_every_position_and_range():
    """body_marks reads 16 bytes at a time where it can: a CR, a NUL or a blank before a LF anywhere in or at
    the edge of such a block, before the range, in it or after it, with every start and end, gives the
    reference's marks; the scan's hash and NUL check from them equal hash_body's and ``in``'s."""
    for piece in (b" \n", b"\t\n", b"\r", b"\r\n", b"\0", b"\n\n", b" \r\n"):
        for at in range(0, 39):
            buf = bytearray(b"x" * 40)
            buf[at:at + len(piece)] = piece
            buf = bytes(buf[:40])
            for start in range(0, 41):
                assert headers._hash_body_nul(buf, start) == (headers.hash_body(buf, start), b"\0" in buf)
                for end in range(start, 41):
                    assert native.body_marks(buf, start, end) == headers._body_marks_py(buf, start, end), \
                        (piece, at, start, end)
    assert native.body_marks(b"a \n\r\0", -3, 10**9) == headers._body_marks_py(b"a \n\r\0", 0, 5) == 7
    assert native.body_marks(b"ab", 2, 1) == 0


ADDRESS_PIECES = st.sampled_from([
    "a", "b.c", "@", "x@y.z", "Jo@Example.COM", "<", ">", '"', " ", "  ", "\t", ",", ",,", "Name", "Ann Lee",
    '"Last, First"', '"q\\x"', '""', "(", ")", ";", ":", "\\", "[", "]", "\r", "\n", "..", ".", "-", "'", "\x01",
    "\x7f", "\x00", "!#$%&'*+/=?^_`{|}~-", "<a@b>", "<x.y@z-q.r>", "<>", "@@", "a@", "@b", "a@b.", "a.@b", "\xe9",
    "caf\xe9 <c@d>", "\udcff", "\x1f", "\x08", "\x0b", "\x20"])
ADDRESS_VALUES = st.lists(ADDRESS_PIECES, max_size=30).map("".join)


@settings(max_examples=1200, deadline=None)
@given(ADDRESS_VALUES)
def test_fast_addresses_equals_the_reference_on_lists_of_address_pieces(value):
    check_addresses(value)
    check_addresses("Name <" + value + ">")
    check_addresses(value + ", a@b")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fast_addresses_equals_the_reference_on_random_text(value):
    check_addresses(value)


@pytest.mark.parametrize("value", [
    "a..b@c", "a.b@c..d", ".a@b", "a@.b", "a@b-c.d-", "a@b_c", '"" <a@b>', '" <a@b>"', "N\x1f <a@b>",
    "N\x08 <a@b>", "N\x7f <a@b>", "N\t <a@b>", '"N\x01" <a@b>', '"a" "b" <c@d>', "A <a@b> <c@d>",
    "<a@b>x", "a@b c@d", "a@b, , ,c@d,", "  <A@B>  ", "x <a@b@c>", '"a,b" <a@b>, "c" <c@d>'])
def test_fast_addresses_equals_the_reference_on_edge_cases(value):
    check_addresses(value)


def test_fast_addresses_reads_ascii_text_only():
    with pytest.raises(ValueError):
        native.fast_addresses("caf\xe9 <c@d>")
    with pytest.raises(TypeError):
        native.fast_addresses(b"a@b")
    assert native.fast_addresses("A  \t B <X@Y>, c@d") == [("A B", "x@y"), ("", "c@d")]


# -- the mbox scan (importers/mbox_scan.py) -------------------------------------------------------------------------

from importers import mbox_scan  # noqa: E402

MBOX_PIECES = st.sampled_from([
    b"From a@b Mon Jan  7 09:15:00 2019\n", b"From ", b"From", b"From:", b"From : x\n", b"\nFrom", b"Subject: x\n",
    b"X-Mozilla-Status: 0009\n", b"status :RO\n", b"X-STATUS\t: A\n", b"x-gmail-labels: a\n", b"X-Mozilla-Keys:",
    b"Content-Length: 4\n", b"CONTENT-length", b"Content-Length: 0\n", b"content-length :\t12 \r\n", b"Content-Length: 1",
    b"Content-Length: 1234567890123456\n", b"Content-Length: x\n", b" folded\n", b"\tfolded\n", b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n",
    b">From ", b">>From x\n", b">", b">From\n", b"\x00", b"\x0b", b"\x0c", b" ", b"\t", b"text\n", b":", b"a:", b"\xff",
    b"Bad line\n"])
MBOX_BUFS = st.lists(st.one_of(MBOX_PIECES, _long(b"x", 3000), _long(b"\n", 50)), max_size=80).map(b"".join)


def check_mbox_scan(buf: bytes, pos: int) -> list:
    for eof in (False, True):
        for cap in (-1, 0, 40, 1 << 40):
            want = mbox_scan.mbox_scan_py(buf, pos, eof, cap)
            assert native.mbox_scan(buf, pos, eof, cap) == want, (pos, eof, cap)
    for start in range(0, len(buf) + 2, max(1, len(buf) // 50)):
        assert native.find_from_line(buf, start) == buf.find(b"\nFrom", start)
    return mbox_scan.mbox_scan_py(buf, pos, True, -1)


def test_the_mbox_scan_is_what_the_splitter_runs():
    assert mbox_scan.mbox_scan is native.mbox_scan and mbox_scan.NATIVE_SCAN
    assert mbox_scan.find_from_line is native.find_from_line


@settings(max_examples=800, deadline=None)
@given(MBOX_BUFS, st.integers(0, 1 << 20))
def test_the_mbox_scan_equals_its_reference_on_mbox_pieces(buf, pos):
    check_mbox_scan(buf, pos % (len(buf) + 1))
    check_mbox_scan(buf, 0)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=800), st.integers(0, 900))
def test_the_mbox_scan_equals_its_reference_on_random_bytes(buf, pos):
    check_mbox_scan(buf, pos)
    check_mbox_scan(b"Subject: x\n\n" + buf, 0)


def test_the_mbox_scan_on_the_mbox_corpora_at_every_message():
    """Every mbox of the corpora (decompressed), from each From_ line on: the scan finds what its reference finds,
    and takes a good share of the messages (the reference's plain case is the common one)."""
    from importers.mbox import open_decompressed

    roots = [REPO / "sample_data" / "mbox", corpora_dir() / "b-mbox-maildir"]
    files = sorted(p for root in roots for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lz"))
    taken = 0
    for path in files:
        with open(path, "rb") as f:
            data = open_decompressed(f).read()
        starts, i = [0], data.find(b"\nFrom ")
        while i >= 0 and len(starts) < 300:
            starts.append(i + 1)
            i = data.find(b"\nFrom ", i + 1)
        for at in starts:
            after = data.find(b"\n", at) + 1
            if after:
                taken += len(check_mbox_scan(data, after)) > 0
    assert len(files) > 5 and taken > 100


def test_the_from_line_search_at_every_position_and_start():
    """The search reads 16 positions at a time where it can: a From line (or a near miss: ``\\nFro``, ``\\nF``,
    ``\\nfrom``) at every position of such a block and at the buffer's end, from every start, is found exactly where
    ``bytes.find`` finds it."""
    for piece in (b"\nFrom", b"\nFro", b"\nF", b"\nfrom", b"\n\nFrom", b"F\nFrom"):
        for at in range(0, 40):
            for size in (at + len(piece), 40 + len(piece)):
                buf = bytearray(b"x\nFr" * 20)[:size]
                buf[at:at + len(piece)] = piece
                buf = bytes(buf[:size])
                for start in range(0, len(buf) + 2):
                    assert native.find_from_line(buf, start) == buf.find(b"\nFrom", start), (piece, at, start)


def test_the_mbox_scan_arguments():
    assert native.mbox_scan(bytearray(b"S: x\n\nb\n\nFrom a\n"), 0, True, -1) == [(8, 9, 16, 5, 0, 0, 0)]
    assert native.mbox_scan(b"S: x\n\nb\n\nFrom a\n", -3, 1, -1) == native.mbox_scan(b"S: x\n\nb\n\nFrom a\n", 0, 1, -1)
    assert native.mbox_scan(b"S: x\n", 10**9, True, -1) == []
    with pytest.raises(TypeError):
        native.mbox_scan("text", 0, True, -1)
    with pytest.raises(TypeError):
        native.mbox_scan(b"x", 0, True)
