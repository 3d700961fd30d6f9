"""The compiled header scan of a usual block (``scan_usual`` in toolkit/_native.c) equals the Python scan.

``headers.scan`` hands a header block to the compiled scan first; what it reads (a usual block: plain
fields, a Message-ID, plain address lists, a date in the usual form, a subject without encoded words)
must give the same MailMeta, field by field and type by type -- catalog contents, defects in their order,
the dedup key -- as the Python scan (``_scan_headers`` and ``dedup_key``), which stays the reference and
reads everything the compiled one declines (it answers None). Compared on every file of the corpora and
the repository's sample data, on hypothesis-random blocks built from the pieces the rules are about
(folds, 8-bit bytes, NULs, controls, encoded words -- valid, invalid, of unknown charsets, in the subject
and the From name --, dates at every range edge, address lists, spam flags, a missing header end, huge lines) and on random bytes; and a block that ends or starts at an
inaccessible page is read without touching it.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import fields
from datetime import timezone

import pytest
from hypothesis import given, settings, strategies as st

from tests.guard_pages import guarded
from tests.corpora import REPO, corpora_dir
from toolkit import headers
from toolkit.headers import MailMeta, scan, split_mail

native = headers._native


@pytest.fixture(autouse=True)
def _need_native():
    if native is None:
        if os.environ.get("CI") == "true":
            pytest.fail("toolkit._native is not built (CI must run the compiled scans)")
        pytest.skip("toolkit._native is not built (no C compiler at install time)")


@contextmanager
def python_scan():
    """The Python scan alone, as on a machine without the compiled module."""
    saved = headers._scan_usual
    headers._scan_usual = None
    try:
        yield
    finally:
        headers._scan_usual = saved


def _values(meta: MailMeta) -> list:
    out = []
    for f in fields(MailMeta):
        v = getattr(meta, f.name)
        out.append((f.name, type(v), v, getattr(v, "tzinfo", None) is timezone.utc))
    return out


def check(raw: bytes, **kw) -> bool:
    """scan(raw) with the compiled scan equals it without; True when the compiled scan read the block."""
    with python_scan():
        want = scan(raw, **kw)
    got = scan(raw, **kw)
    assert _values(got) == _values(want)
    block = split_mail(raw).block
    read = bool(block) and native.scan_usual(block, kw.get("max_addresses", 10_000), 2e9) is not None
    if read and len(block) <= kw.get("max_header_bytes", 1 << 20):
        # every field of the answer is one the Python scan set (the key made from the bytes it names)
        assert got.message_id is not None and "no-message-id" not in got.defects
    return read


def test_the_compiled_scan_is_what_scan_runs():
    assert headers._scan_usual is native.scan_usual


def _corpus_files() -> list:
    roots = [REPO / "sample_data"]
    corpora = corpora_dir()
    roots += [corpora / d for d in ("a-mime-edge", "b-mbox-maildir", "c-exchange-journal", "e-real-corpus")]
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file() and p.stat().st_size < 8 << 20)


def test_equal_to_the_python_scan_on_every_corpus_file():
    files = _corpus_files()
    read = sum(check(path.read_bytes()) for path in files)
    assert len(files) > 5000 and read > 2000   # the corpora were there, and many of their blocks are usual


USUAL = (b"From: Hans <hans@example.com>\nTo: a@b.example, \"Last, First\" <c@d.example>\nCc: e@f.example\n"
         b"Subject: Lieferung #4216\nDate: Thu, 16 May 2019 08:16:00 +0000\nMessage-ID: <bench-4216@example.com>\n"
         b"MIME-Version: 1.0\n\nbody \n")


def test_a_usual_mail_is_read_by_the_compiled_scan():
    assert check(USUAL)
    assert check(USUAL.replace(b"\n", b"\r\n"))
    assert check(b"X-Spam-Flag: YES\nX-MS-Journal-Report:\n" + USUAL)
    assert check(USUAL.replace(b"Lieferung", "Grüße".encode()))          # 8-bit subject: header-8bit
    assert check(USUAL.replace(b"Date: Thu, 16 May 2019", b"Date: Thu, 16 May 2099"))  # date-implausible
    meta = scan(USUAL)
    assert meta.to == ["a@b.example", "c@d.example"] and meta.from_name == "Hans" and meta.spam is False
    # encoded words and controls in the subject and the From name: read, then decoded by Python's decoder,
    # their defects where the Python scan records them (the subject's after header-8bit and before the
    # date's, the name's after the date's)
    odd = (USUAL.replace(b"Lieferung", "x =?bogus?q?b?= \x01 ü".encode())
           .replace(b"Hans <", b"=?utf-8?b?Q?= =?utf-8?q?J=C3=BCrgen?= <").replace(b"2019", b"2099"))
    assert check(odd)
    meta = scan(odd)
    assert meta.defects == ["header-8bit", "charset-unknown", "date-implausible", "encoded-word-invalid"]
    assert meta.subject == "x b \\x01 ü #4216" and meta.from_name == "=?utf-8?b?Q?= =?utf-8?q?J=C3=BCrgen?="
    assert check(odd.replace(b"=?utf-8?b?Q?= ", b"")) and scan(odd.replace(b"=?utf-8?b?Q?= ", b"")).from_name == "Jürgen"
    assert check(USUAL.replace(b"Date: Thu, 16", b"Date: Thu,  6"))   # two spaces: parsedate's form
    # what it declines, the Python scan reads
    for other in (USUAL.replace(b"Message-ID: <bench-4216@example.com>\n", b""),
                  USUAL.replace(b"Lieferung", b"x" * 70_000),
                  USUAL.replace(b"+0000", b"-0000"),
                  USUAL.replace(b"Hans <", b"Hans (x) <")):
        assert not check(other)


# the pieces of a header block the rules are about
MIDS = st.sampled_from([b"<a@b>", b" <a@b> ", b"a@b", b"<>", b"", b" ", b"<a@b", b"a@b>", b"<<a@b>>", b"<a b@c>",
                        b"<a@b>\n <c@d>", b"<a\r\n @b>", b"x <a@b> y", b"\xe9<a@b>", b"<\xff\xfe@b>", b"<a\x00b@c>",
                        b"<<>>", b">a<", b"<a@b>\n"])
SUBJECTS = st.sampled_from([b"hi", b" hi ", b"", b"caf\xc3\xa9", b"\xff\xfe", b"a\x01b", b"a\x7fb", b"\xc2\x85x",
                            b"=?utf-8?q?x?=", b"a=?b", b"a\n b", b"a\r\n\tb", b"\x1chi\x1f", b"\x0bhi\x0c",
                            b"tab\there", b"a" * 2500, "ü".encode() * 1500, b"x" * 70_000, b"\xe2\x82", b"a\x00",
                            b"=?utf-8?q?Gr=C3=BC=C3=9Fe?=", b"=?iso-8859-1?q?caf=e9?= ok", b"=?bogus?q?x?=",
                            b"=?utf-8?b?!!!?=", b"=?utf-8?q?a=01b?=", b"=?utf-8?B?" + b"QUFB" * 700 + b"?=",
                            b"=?utf-8?q?x?=\xe9\x01", b"=?x?q?=C2=85?=", b"=?utf-8?q?a?= =?bogus?q?b?=",
                            b"=?utf-8?b?Q?=", b"x =?utf-8?b?Q?= =?bogus?q?b?="])
DATES = st.sampled_from([
    b"Thu, 16 May 2019 08:16:00 +0000", b"16 May 2019 08:16:00 +0200", b"6 May 2019 08:16:00 -0130",
    b"Thu, 16 May 2019 08:16:00 +0000 (UTC)", b"Thu, 16 May 2019 08:16:00 +0000 (a(b))", b"Thu, 16 May 2019 08:16:00 +0000 ()",
    b"Thu, 16 May 2019 08:16:00 +0000  (UTC)", b"Thu, 16 May 2019 08:16:00 -0000", b"Thu, 16 May 2019 08:16:00 +2359",
    b"Thu, 16 May 2019 08:16:00 +2400", b"Thu, 16 May 2019 08:16:00 +0099", b"Thu, 16 May 2019 08:16:00 -2399",
    b"Thu, 31 Feb 2019 08:16:00 +0000", b"Thu, 29 Feb 2020 08:16:00 +0000", b"Thu, 29 Feb 2100 08:16:00 +0000",
    b"Thu, 29 Feb 2000 08:16:00 +0000", b"Thu, 0 May 2019 08:16:00 +0000", b"Thu, 00 May 2019 08:16:00 +0000",
    b"Thu, 16 May 2019 24:00:00 +0000", b"Thu, 16 May 2019 23:60:00 +0000", b"Thu, 16 May 2019 23:59:60 +0000",
    b"Fri, 31 Dec 9999 23:00:00 -0100", b"Fri, 31 Dec 9999 23:00:00 +0100", b"Mon, 1 Jan 1000 00:30:00 +0100",
    b"Thu, 1 Jan 1970 00:00:00 +0000", b"Fri, 1 Jan 1971 00:00:00 +0000", b"Thu, 31 Dec 1970 23:59:59 +0000",
    b"Fri, 1 Jan 1971 00:59:59 +0100", b"Thu, 16 may 2019 08:16:00 +0000", b"Thu 16 May 2019 08:16:00 +0000",
    b"Xyz, 16 May 2019 08:16:00 +0000", b"Thu, 116 May 2019 08:16:00 +0000", b"Thu, 16 May 0999 08:16:00 +0000",
    b"Thu, 16 May 2019 8:16:00 +0000", b"Thu, 16 May 2019 08:16 +0000", b"Thu, 16 May 2019 08:16:00 UT", b"",
    b"  ", b"\x1cThu, 16 May 2019 08:16:00 +0000\x1f", b"Thu, 16 May\n 2019 08:16:00 +0000", b"garbage",
    b"Thu, 16 May 2019 08:16:00 +0000 (\xe9)", b"Thu, 16 May 2019 08:16:00 +0000 x", b"Sun, 1 Jan 2090 00:00:00 +0000",
    b"Fri,  9 Mar 2001 10:00:00 +0100", b"Fri,  19 Mar 2001 10:00:00 -0800 (PST)", b"Fri,   9 Mar 2001 10:00:00 +0100",
    b"Fri,  0 Mar 2001 10:00:00 +0100", b"Fri,  9 Mar 2001 10:00:00 -0000", b"Fri,  9 Mar 2001 24:00:00 +0100",
    b"Fri,  31 Dec 9999 23:00:00 -0100", b"Fri,  9 Mar 1970 10:00:00 +0100", b"Fri,  9 Mar 2001 10:00:00 +2400",
    b"Fri, \t9 Mar 2001 10:00:00 +0100", b"Fri,  9 Mar 2001 10:00:60 +0100", b"Fri,  9 mar 2001 10:00:00 +0100",
    b"Xyz,  9 Mar 2001 10:00:00 +0100", b"Fri,  9 Mar 2001 10:00:00 +0100 (a)(b)", b"Fri,  9 Mar 2001  10:00:00 +0100"])
ADDRESSES = st.sampled_from([
    b"a@b.example", b"Hans <hans@example.com>", b"\"Last, First\" <c@d.example>", b"A@B.EXAMPLE", b"", b" ",
    b"a@b, c@d", b"a@b,,c@d", b"<a@b>", b"Name  With\tBlanks <a@b>", b"\"q\x01\" <a@b>", b"=?utf-8?q?x?= <a@b>",
    b"\"=?x?=\" <a@b>", b"x@y@z", b"a@b (comment)", b"group: a@b;", b"a@b\n c@d", b"a@b,\r\n c@d", b"caf\xc3\xa9 <a@b>",
    b"a@b <c@d>", b"@", b"a@", b"undisclosed-recipients:;", b"\"\" <a@b>", b"N" * 600 + b" <a@b>", b"a@b, a@b, A@B",
    b"x <>", b"\"a\\\"b\" <a@b>", b"[a@b]", b"a@[1.2.3.4]", b"a@b" + b", a@b" * 5, b"a@b.example\x00",
    b"=?utf-8?q?J=C3=BCrgen?= <j@x>", b"=?bogus?q?x?= <j@x>", b"=?utf-8?b?!!!?= <j@x>", b"\"=?utf-8?q?a=01?=\" <j@x>",
    b"\"a@b\" <a@b>", b"\"A@B.\" <a@b>", b"\"a@b\" <c@d>", b"'a@b' <a@b>", b"\"x a@b\" <a@b>, c@d", b"\"@a\" <a@b>",
    b"\"a@\" <a@b>", b"\"`a@b.`\" <a@b>", b"\"a@b\x1cz\" <a@b>", b"\".@.\" <a@b>", b"\"a@b c@d\" <a@b>, c@d",
    b"=?utf-8?q?a?= =?bogus?q?b?= <j@x>", b"=?utf-8?b?Q?= <j@x>", b"=?utf-8?B?" + b"QUFB" * 300 + b"?= <j@x>", b"\"x\x7f\" <j@x>"])
FLAGS = st.sampled_from([b"YES", b"yes", b" Yes ", b"YES\n ", b"\x1cYES\x1f", b"YESS", b"NO", b"", b"Y ES", b"\xffYES"])
STATUS = st.sampled_from([b"Yes, score=9", b"yes", b" yes", b"\x0byes", b"No, score=1", b"", b"ye", b"\xe9yes"])


def _field(name: bytes, values) -> st.SearchStrategy[bytes]:
    names = st.sampled_from([name, name.upper(), name.lower()])
    return st.tuples(names, values, st.sampled_from([b"\n", b"\r\n"])).map(lambda t: t[0] + b": " + t[1] + t[2])


FIELDS = st.one_of(
    _field(b"Message-ID", MIDS), _field(b"Subject", SUBJECTS), _field(b"Date", DATES), _field(b"From", ADDRESSES),
    _field(b"To", ADDRESSES), _field(b"Cc", ADDRESSES), _field(b"Bcc", ADDRESSES), _field(b"X-Spam-Flag", FLAGS),
    _field(b"X-Spam-Status", STATUS), _field(b"X-MS-Journal-Report", st.just(b"")),
    st.sampled_from([b"Received: by x\n", b"X-Other: \xff\n", b"MIME-Version: 1.0\n", b" continued\n", b"\tcont\r\n",
                     b"no colon\n", b"\r", b"\x00", b"From sender Thu\n", b"X:" + b" " * 5000 + b"\n",
                     b"X-Long: " + b"y" * 70_000 + b"\n"]))
BLOCKS = st.lists(FIELDS, max_size=14).map(b"".join)
ENDS = st.sampled_from([b"\nbody \n", b"\r\nbody\r\n", b"", b"\n", b"\n\x00"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(FIELDS, min_size=1, max_size=3), BLOCKS, ENDS)
def test_equal_to_the_python_scan_on_blocks_of_header_pieces(head, block, end):
    # a Message-ID first in most examples: without one the compiled scan declines the block
    check(b"Message-ID: <m@x>\n" + b"".join(head) + block + end)
    check(b"".join(head) + block + end)


def _or_usual(usual: bytes, values) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(usual), values)


@settings(max_examples=1500, deadline=None)
@given(_or_usual(b"<m@x>", MIDS), _or_usual(b"Hans <hans@example.com>", ADDRESSES), _or_usual(b"a@b, c@d", ADDRESSES),
       _or_usual(b"hi", SUBJECTS), _or_usual(b"Thu, 16 May 2019 08:16:00 +0000", DATES), _or_usual(b"NO", FLAGS),
       _or_usual(b"No", STATUS), st.sampled_from([b"\n", b"\r\n"]), ENDS)
def test_equal_on_a_usual_mail_with_its_fields_varied(mid, sender, to, subject, date, flag, status, eol, end):
    raw = eol.join([b"Message-ID: " + mid, b"From: " + sender, b"To: " + to, b"Subject: " + subject, b"Date: " + date,
                    b"X-Spam-Flag: " + flag, b"X-Spam-Status: " + status]) + eol + end
    check(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(FIELDS, min_size=1, max_size=8).map(b"".join), st.integers(1, 30))
def test_equal_within_the_address_and_header_budgets(block, budget):
    raw = b"Message-ID: <m@x>\nFrom: a@b\nTo: c@d, e@f, g@h\nCc: c@d, i@j\nBcc: k@l\n" + block + b"\n"
    check(raw, max_addresses=budget)
    check(raw, max_header_bytes=max(budget * 8, 1))


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=400))
def test_equal_to_the_python_scan_on_random_bytes(junk):
    check(b"Message-ID: <m@x>\n" + junk)
    check(b"Message-ID: <m@x>\nSubject: " + junk + b"\n\n")
    check(b"Message-ID: <m@x>\nDate: " + junk + b"\nFrom: " + junk + b"\n\n")
    check(b"Message-ID: " + junk + b"\nTo: " + junk + b"\n\n")


def test_the_arguments():
    assert native.scan_usual(bytearray(USUAL), 10, 2e9) == native.scan_usual(memoryview(USUAL), 10, 2e9) \
        == native.scan_usual(USUAL, 10, 2e9)
    for bad in ((USUAL, 10), (USUAL, "10", 2e9), ("text", 10, 2e9), (USUAL, 10, "later")):
        with pytest.raises(TypeError):
            native.scan_usual(*bad)


@pytest.mark.parametrize("raw", [
    b"Message-ID: <m@x>\nSubject: " + b" " * 3_000_000 + b"\n\n",      # one long run of blanks in a value
    b"Message-ID: <m@x>\nTo: a@b\n" + b" , c@d\n" * 200_000 + b"\n",   # many continuation lines of addresses
    b"Message-ID: <m@x>\n" + b"To: a@b\n" * 100_000 + b"\n",            # many fields
    b"Message-ID: <" + b"<" * 900_000 + b"\n\n",                        # brackets with no end
    b"Message-ID: <m@x>\nDate: " + b"1 Jan 2019 00:00:00 +0000 (" + b"x" * 900_000 + b")\n\n",
])
def test_equal_on_large_worst_cases(raw):
    check(raw)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mmap/mprotect through libc")
def test_no_byte_outside_the_block_is_read():
    # blocks that end right before an inaccessible page, or start right after it: a read past either end
    # kills the process. Every prefix of a usual block, so each field's value ends at the page edge.
    with guarded(pages=2) as (before, after):
        block = split_mail(b"X-Spam-Flag: YES\nX-Spam-Status: yes\n" + USUAL).block
        for n in range(len(block) + 1):
            before[len(before) - n:] = block[:n]
            after[:n] = block[len(block) - n:]
            for view, piece in ((before[len(before) - n:], block[:n]), (after[:n], block[len(block) - n:])):
                assert native.scan_usual(view, 10_000, 2e9) == native.scan_usual(bytes(piece), 10_000, 2e9)
        del before, after, view
