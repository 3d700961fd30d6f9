"""verify/mailkey.py: ``mail_key`` (F04's key of a mail, by a shorter path) gives exactly
``f04_key(header_fields(raw))`` for every input, and ``fields_of_key`` reads back the fields a key was built from.

On every file of the sample data and of the shared corpora (a-mime-edge, e-real-corpus), and on random header
blocks: folded and repeated fields, encoded words, 8-bit and control bytes, CR, dates of every spelling, address
lists of every shape. The corpora must mostly take the short path, or the comparison would prove little.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.headers import MailMeta, header_fields
from verify.mailkey import _fast_key, _usual_key, f04_key, fields_of_key, mail_key

REPO = Path(__file__).resolve().parents[2]
CORPORA = Path(os.environ.get("MAILARCHIVE_CORPORA", REPO.parent / "shared" / "corpora"))


def _files() -> list[Path]:
    roots = [REPO / "sample_data", CORPORA / "a-mime-edge", CORPORA / "e-real-corpus"]
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing in CI: {missing}")
        pytest.skip(f"corpus not found: {missing} (set MAILARCHIVE_CORPORA)")
    return sorted(p for r in roots for p in r.rglob("*") if p.is_file() and p.suffix not in (".tsv", ".md", ".json"))


def _assert_reference(raw: bytes) -> tuple[bool, bool]:
    """mail_key, and each of its two short paths where it applies, give the reference key; returns which applied."""
    want = f04_key(header_fields(raw))
    assert mail_key(raw) == want
    usual, fast = _usual_key(raw), _fast_key(raw)
    assert usual in (None, want)
    assert fast in (None, want)
    return usual is not None, fast is not None


def test_the_corpora_give_the_reference_key():
    files = _files()
    assert len(files) > 2000
    usual = fast = 0
    for path in files:
        raw = path.read_bytes()
        try:
            u, f = _assert_reference(raw)
        except AssertionError:
            raise AssertionError(path) from None
        usual += u
        fast += f
    assert fast > 0.6 * len(files), (fast, len(files))
    if headers_native():
        assert usual > 0.4 * len(files), (usual, len(files))


def headers_native() -> bool:
    from toolkit import headers

    return headers._scan_usual is not None


_NAMES = st.sampled_from(["From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "message-id", "TO", "cc",
                          "X-Spam-Flag", "Received", "Reply-To", "Content-Type", "From ", "X"])
_ADDRESS = st.sampled_from([
    "a@example.org", "Anna <anna@example.org>", '"Last, First" <lf@example.org>', "B@EXAMPLE.ORG",
    "=?utf-8?q?J=C3=BCrgen?= <j@example.org>", "undisclosed-recipients:;", "group: a@x.org, b@x.org;",
    "a@x.org (comment)", "<@route:a@x.org>", '"q\\"uote" <q@x.org>', "a@[127.0.0.1]", "no address", "", "@", "a@",
    "x@y@z", "Ünïcode <u@example.org>", "a@x.org,, b@x.org", "a@x.org; b@x.org",
])
_DATE = st.one_of(
    st.sampled_from(["Thu, 16 May 2019 08:16:00 +0000", "16 May 2019 08:16:00 -0000", "Thu, 16 May 2019 08:16:00 GMT",
                     "Thu, 16 May 19 08:16:00 +0200", "Mon, 31 Feb 2020 10:00:00 +0000", "Sun, 01 Jan 1900 00:00:00 +2359",
                     "garbage", "", "  ", "Thu, 16 May 2019 08:16:00 +0000 (UTC)", "Tue, 1 Jan 0001 00:00:00 +0100",
                     "Fri, 31 Dec 9999 23:59:59 -1200", "2019-05-16T08:16:00Z", "Thu, 16 May 2019 24:00:00 +0000"]),
    st.datetimes(min_value=dt.datetime(1965, 1, 1), max_value=dt.datetime(2040, 1, 1)).map(
        lambda d: d.strftime("%a, %d %b %Y %H:%M:%S +0100")),
)
_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.text(max_size=20),
    st.sampled_from(["=?utf-8?b?w6TDtsO8?=", "=?iso-8859-1?q?caf=E9?= x", "=?bogus?q?x?=", "=?utf-8?q?broken",
                     "<id@host>", "  <a b@c>  ", "<>", "x\ty", "tab\t", "\x07bell"]),
)


@st.composite
def _value(draw, name: str) -> str:
    lname = name.strip().lower()
    if lname in ("from", "to", "cc", "bcc", "reply-to"):
        v = ", ".join(draw(st.lists(_ADDRESS, max_size=4)))
    elif lname == "date":
        v = draw(_DATE)
    else:
        v = draw(_TEXT)
    if draw(st.booleans()):  # folded
        cut = draw(st.integers(0, len(v)))
        v = v[:cut] + draw(st.sampled_from(["\n ", "\r\n\t", "\n\t "])) + v[cut:]
    return v


@st.composite
def _mail(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 9))):
        name = draw(_NAMES)
        lines.append(f"{name}: {draw(_value(name))}")
    head = "\n".join(lines)
    raw = head.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    if draw(st.booleans()):  # 8-bit, control or odd bytes somewhere in the header block
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\xa4", b"\r", b"\x00", b"\n \n", b"\nnot a header\n"])) + raw[at:]
    sep = draw(st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n", b"", b"\n\r\n"]))
    prefix = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"From someone@x Thu May 16 08:16:00 2019\n", b" "]))
    return prefix + raw + sep + b"body line\n"


@settings(max_examples=400, deadline=None)
@given(_mail())
def test_random_header_blocks_give_the_reference_key(raw):
    _assert_reference(raw)


@settings(max_examples=400, deadline=None)
@given(_mail(), st.sampled_from([b"Message-ID: <m1@example.org>\n", b"Message-Id:  <a b@x>\r\n", b"message-id: x\n"]))
def test_random_blocks_with_a_message_id_give_the_reference_key(raw, mid):
    """The compiled scan's path (``_usual_key``) reads only blocks with a Message-ID: the random blocks with one first
    (most of them usual), each path against the reference."""
    _assert_reference(mid + raw)


@pytest.mark.parametrize("compiled_key", [True, False])
@pytest.mark.parametrize("head", [
    b"Subject: caf\xc3\xa9 \xe2\x82\xac \xff\nDate: Mon, 1 Jan 1900 00:00:00 +0100\n",   # 8-bit, invalid UTF-8
    b"Subject: x\nDate: Tue, 1 Jan 1000 00:00:00 -0130\nTo: z@x.org, a@x.org, m@x.org\n",
    b"Subject: \nTo: \nCc: \n",
    b"Date: Fri, 31 Dec 9998 23:59:59 -1200\nCc: B@X.ORG, b@x.org, a@x.org\n",
])
def test_the_compiled_key_is_the_reference_key(head, compiled_key, monkeypatch):
    """The key the compiled scan builds (``f04_usual_key``: UTF-8 byte lengths, dates before 1970 and near 9999,
    empty and sorted recipient lists) and the one built here from the compiled scan's fields (a compiled module
    without ``f04_usual_key``) are the reference key."""
    from verify import mailkey

    if not compiled_key:
        monkeypatch.setattr(mailkey, "_native_key", None)
    raw = b"Message-ID: <k@x.org>\nFrom: Anna <anna@example.org>\n" + head + b"\nbody\n"
    assert _assert_reference(raw)[0] == headers_native()


def test_the_usual_path_reads_the_usual_mail():
    """A plain mail, one with an encoded-word subject (decoded in Python after the compiled scan) and one without a
    Message-ID (declined: the Python short path reads it) give the reference key."""
    usual = (b"From: Anna <anna@example.org>\nTo: b@x.org, c@x.org, b@x.org\nCc: d@x.org\nCc: e@x.org, d@x.org\n"
             b"Subject: plain\nDate: Thu, 16 May 2019 08:16:00 +0200\nMessage-ID: <m@x.org>\n\nbody\n")
    assert _assert_reference(usual)[0] == headers_native()
    encoded = usual.replace(b"Subject: plain", b"Subject: =?utf-8?q?J=C3=BCrgen?= \x07bell")
    assert _assert_reference(encoded)[0] == headers_native()
    assert _assert_reference(usual.replace(b"Message-ID: <m@x.org>\n", b"")) == (False, True)


@settings(max_examples=150, deadline=None)
@given(st.lists(_mail(), min_size=1, max_size=6), st.integers(1, 3))
def test_address_fields_read_again_from_the_cache_give_the_reference_key(raws, size):
    """A worker keeps the addresses of recent From/To/Cc values (``_addresses``, ``_one_list``): a value met
    again, in the same mail or another, and a cache cleared on the way (a tiny ``ADDRESS_CACHE``) give the key
    the reference gives."""
    from verify import mailkey

    old = mailkey.ADDRESS_CACHE
    mailkey.ADDRESS_CACHE = size
    try:
        for raw in raws + raws[::-1] + raws:
            _assert_reference(raw)
    finally:
        mailkey.ADDRESS_CACHE = old
        mailkey._addresses_of.clear()
        mailkey._list_of.clear()



def test_a_long_address_field_is_read_each_time_and_never_kept():
    """Only short From/To/Cc values are kept (``CACHED_VALUE_MAX``): a mail with a huge To: list gives the
    reference key every time and leaves nothing in the cache, so a hostile archive cannot fill a worker's memory."""
    from verify import mailkey

    mailkey._addresses_of.clear()
    mailkey._list_of.clear()
    many = ", ".join(f"user{i}@example{i}.org" for i in range(400))
    assert len(many) > mailkey.CACHED_VALUE_MAX
    raw = (f"From: a@example.org\nTo: {many}\nCc: b@example.org\nSubject: long\nMessage-ID: <l@x>\n\nbody\n").encode()
    for _ in range(2):  # the Python short path (the compiled scan's path keeps nothing)
        assert _fast_key(raw) == mail_key(raw) == f04_key(header_fields(raw))
    kept = set(mailkey._addresses_of) | set(mailkey._list_of)
    assert kept and all(len(v) <= mailkey.CACHED_VALUE_MAX for v in kept)
    assert many not in kept


_USUAL_DATE = st.builds(
    "{}{:0{w}d} {} {:04d} {:02d}:{:02d}:{:02d} {}{:02d}{:02d}{}".format,
    st.sampled_from(["", "Thu, ", "Mon, "]), st.integers(0, 99), st.sampled_from(["Jan", "Feb", "Jun", "Dec"]),
    st.one_of(st.integers(1000, 9999), st.sampled_from([1000, 1970, 1969, 2000, 2100, 9998, 9999])),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61), st.sampled_from(["+", "-"]),
    st.one_of(st.integers(0, 99), st.sampled_from([0, 23, 24])), st.one_of(st.integers(0, 99), st.sampled_from([0, 59, 60])),
    st.sampled_from(["", " (UTC)", " (CET)"]), w=st.sampled_from([1, 2]))


@settings(max_examples=400, deadline=None)
@given(_USUAL_DATE)
def test_dates_of_the_usual_form_give_the_reference_key(date):
    """The short path's date arithmetic (``_usual_date_key``) against header_fields' datetime, on dates of the usual
    form with fields in and out of range: days past the month's end, hour 24, second 60, zones of a day and more,
    "-0000", the years 1000 and 9999."""
    raw = f"Date: {date}\nFrom: a@example.org\n\nbody\n".encode()
    assert mail_key(raw) == f04_key(header_fields(raw))


@settings(max_examples=150, deadline=None)
@given(st.lists(_USUAL_DATE, min_size=1, max_size=6), st.integers(1, 3))
def test_dates_read_again_from_the_days_cache_give_the_reference_key(dates, size):
    """A worker keeps the day numbers of recent dates (``_days_of``): a day met again, a cache cleared on the way
    (a tiny ``DAYS_CACHE``) and days out of range that are never kept give the key the reference gives."""
    from verify import mailkey

    old = mailkey.DAYS_CACHE
    mailkey.DAYS_CACHE = size
    mailkey._days_of.clear()
    try:
        for date in dates + dates[::-1] + dates:
            raw = f"Date: {date}\nFrom: a@example.org\n\nbody\n".encode()
            assert mail_key(raw) == f04_key(header_fields(raw))
        assert len(mailkey._days_of) <= size
    finally:
        mailkey.DAYS_CACHE = old
        mailkey._days_of.clear()


_FIELD = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", "S3:abc", "N", "|", "1:a", "é€😀", "a:b|c"]))
_ADDRS = st.lists(st.sampled_from(["a@x.org", "b@x.org", "1:a@x.org", "é@x.org", "|@x", "", "S1:x", "N"]), max_size=4)
_WHEN = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                                          timezones=st.just(dt.timezone.utc)))


@settings(max_examples=200, deadline=None)
@given(_FIELD, _FIELD, _FIELD, _WHEN, _ADDRS, _ADDRS)
def test_fields_of_key_reads_back_the_fields(mid, frm, subj, when, to, cc):
    got = fields_of_key(f04_key(MailMeta(message_id=mid, from_addr=frm, subject=subj, sent_date=when, to=to, cc=cc)))
    assert got.message_id == mid and got.from_addr == frm and got.subject == subj
    assert got.sent_date == when and (when is None or got.sent_date.isoformat() == when.isoformat())
    assert sorted(got.to) == sorted(set(to)) and sorted(got.cc) == sorted(set(cc))


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(["<", ">", " ", "\t", "\r", "\n", "a", "@", "b", ".", "é", "\x0b", "\u00a0"]), max_size=16))
def test_the_message_id_short_path_is_normalise_message_id(value):
    """``_message_id`` skips the whitespace pass on a value without blanks: the same id as the reference for any value
    (brackets anywhere, other whitespace that the pass leaves, such as a vertical tab or a no-break space)."""
    from toolkit.headers import normalise_message_id
    from verify.mailkey import _message_id

    assert _message_id(value) == normalise_message_id(value)
