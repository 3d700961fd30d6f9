"""toolkit.headers: the header scan, body normalisation and the dedup key (J1-J9, J11)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, getaddresses
from types import SimpleNamespace

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import headers
from toolkit.headers import (
    _fast_addresses,
    dedup_key,
    normalise_body,
    normalise_message_id,
    scan,
    split_message,
)

BASE = (
    b"Received: from mx1.example.org by mx2.example.org; Mon, 1 Jan 2024 10:00:01 +0000\n"
    b"From: Alice Example <Alice@Example.ORG>\n"
    b"To: bob@example.net, \"Carol, C.\" <CAROL@example.net>\n"
    b"Cc: dave@example.com\n"
    b"Subject: Quarterly report\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0200\n"
    b"Message-ID: <20240101.ABC@Example.ORG>\n"
    b"\n"
    b"Hello Bob,\n"
    b"numbers attached.  \n"
    b"\n"
)


def crlf(b: bytes) -> bytes:
    return b.replace(b"\n", b"\r\n")


# ------------------------------------------------------------------ basics

def test_basic_fields():
    m = scan(BASE)
    assert m.message_id == "20240101.ABC@Example.ORG"
    assert m.subject == "Quarterly report"
    assert m.from_addr == "alice@example.org"
    assert m.from_name == "Alice Example"
    assert m.to == ["bob@example.net", "carol@example.net"]
    assert m.cc == ["dave@example.com"]
    assert m.bcc == []
    assert m.sent_date == datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)
    assert m.spam is False and m.journal is False
    assert m.defects == []
    assert m.header_size == BASE.index(b"\n\n") + 1
    assert len(m.dedup_key) == 32


def test_message_id_normalisation():
    assert normalise_message_id("  <abc@Example.ORG>  ") == "abc@Example.ORG"
    assert normalise_message_id("<abc\r\n @ex.org> (comment)") == "abc@ex.org"
    assert normalise_message_id("abc@ex.org") == "abc@ex.org"
    assert normalise_message_id("<>") is None
    assert normalise_message_id("   ") is None
    m = scan(b"Message-ID:\n <Folded.ID@Host>\nFrom: a@b.c\n\nx\n")
    assert m.message_id == "Folded.ID@Host"


def test_bcc_and_journal_header():
    m = scan(b"From: a@b.c\nBcc: Secret@X.org\nX-MS-Journal-Report: \nMessage-ID: <j@x>\n\nbody\n")
    assert m.bcc == ["secret@x.org"]
    assert m.journal is True


def test_multiple_to_headers_merge_and_dedupe():
    m = scan(b"From: a@b.c\nTo: x@y.z, X@Y.Z\nTo: w@y.z\n\nb\n")
    assert m.to == ["x@y.z", "w@y.z"]


# ------------------------------------------------------------------ body + dedup key

def test_normalise_body_rules():
    assert normalise_body(b"a \t\r\nb\r\n\r\n\r\n") == b"a\nb"
    assert normalise_body(b"a\rb  \n") == b"a\rb"          # bare CR kept
    assert normalise_body(b"x\n  \n\t\n") == b"x"          # whitespace-only trailing lines go
    assert normalise_body(b"no newline  ") == b"no newline"
    assert normalise_body(b"") == b""
    big = (b"line with trailing   \r\n" * 100_000)        # > 1 MiB: the regex path
    assert normalise_body(big) == b"\n".join([b"line with trailing"] * 100_000)


def test_dedup_key_ignores_transport_headers_and_line_endings():
    a = scan(BASE)
    b = scan(b"Received: from elsewhere by gw; Tue, 2 Jan 2024 00:00:00 +0000\r\n"
             b"X-Gateway: copy\r\n" + crlf(BASE.split(b"\n", 1)[1]))
    assert a.message_id == b.message_id
    assert a.body_hash == b.body_hash
    assert a.dedup_key == b.dedup_key


def test_dedup_key_changes_with_body():
    a = scan(BASE)
    b = scan(BASE.replace(b"numbers attached", b"numbers attached!"))
    assert a.dedup_key != b.dedup_key


def test_dedup_key_changes_with_message_id():
    assert scan(BASE).dedup_key != scan(BASE.replace(b"ABC@", b"ABD@")).dedup_key
    # case is kept in the Message-ID
    assert scan(BASE).dedup_key != scan(BASE.replace(b"ABC@", b"abc@")).dedup_key


def test_no_message_id_path():
    nomid = BASE.replace(b"Message-ID: <20240101.ABC@Example.ORG>\n", b"")
    m = scan(nomid)
    assert m.message_id is None and "no-message-id" in m.defects
    # folding / whitespace differences in the five fields do not matter
    refolded = nomid.replace(b"Subject: Quarterly report", b"Subject:  Quarterly\r\n\treport ")
    assert scan(refolded).dedup_key == m.dedup_key
    # transport headers do not matter
    assert scan(b"Received: by x\n" + nomid).dedup_key == m.dedup_key
    # any of the five fields does
    assert scan(nomid.replace(b"Quarterly", b"Monthly")).dedup_key != m.dedup_key
    assert scan(nomid.replace(b"dave@", b"eve@")).dedup_key != m.dedup_key
    assert scan(nomid.replace(b"+0200", b"+0300")).dedup_key != m.dedup_key
    # and the mid / nomid domains never collide
    assert m.dedup_key != scan(BASE).dedup_key


def test_golden_dedup_key():
    """Stored format: if this fails, existing archives stop deduplicating."""
    msg = (b"From: a@b.c\nMessage-ID: <golden-1@example.org>\nSubject: Golden\n"
           b"Date: Tue, 02 Jan 2024 03:04:05 +0000\n\nHello  \r\nWorld\n\n\n")
    m = scan(msg)
    body = blake3.blake3(b"Hello\nWorld").digest()
    assert m.body_hash == body
    expected = hashlib.sha256(b"mailarchive-dedup-v2\0mid\0golden-1@example.org\0" + body).digest()
    assert m.dedup_key == expected
    assert m.dedup_key.hex() == "82214952b7c0d3115992583a3b3d0947c0e794a95aad734ad3d8d21f858784e2"

    nomid = b"From: a@b.c\nSubject: Golden\nDate: Tue, 02 Jan 2024 03:04:05 +0000\nTo: x@y.z\n\nHello\n"
    n = scan(nomid)
    expected = hashlib.sha256(
        b"mailarchive-dedup-v2\0nomid\0Tue, 02 Jan 2024 03:04:05 +0000\0a@b.c\0x@y.z\0\0Golden\0"
        + blake3.blake3(b"Hello").digest()).digest()
    assert n.dedup_key == expected
    assert n.dedup_key.hex() == "e32079d7324b183bd2889ca403bd216369be9bcd9a968a87fabe5a19553914d5"


def test_dedup_key_function_matches_scan():
    m = scan(BASE)
    assert dedup_key("20240101.ABC@Example.ORG", m.body_hash) == m.dedup_key


# ------------------------------------------------------------------ spam

def test_spam_flags():
    assert scan(b"X-Spam-Flag: YES\nFrom: a@b.c\n\nx").spam is True
    assert scan(b"X-Spam-Flag: yes \nFrom: a@b.c\n\nx").spam is True
    assert scan(b"X-Spam-Flag: NO\nFrom: a@b.c\n\nx").spam is False
    assert scan(b"X-Spam-Status: Yes, score=9.1 required=5.0\n\nx").spam is True
    assert scan(b"X-Spam-Status: No, score=0.1\n\nx").spam is False
    assert scan(b"From: a@b.c\n\nX-Spam-Flag: YES\n").spam is False   # in the body: not a header


# ------------------------------------------------------------------ J2 header injection

def test_j2_encoded_newline_in_subject_is_escaped():
    raw = b"From: a@b.c\nSubject: x =?UTF-8?Q?=0A?=Bcc: evil@x\nMessage-ID: <i@x>\n\nbody\n"
    m = scan(raw)
    assert "\n" not in m.subject and "\r" not in m.subject
    assert m.subject == "x \\nBcc: evil@x"
    assert m.bcc == []


def test_j2_other_controls_escaped_and_subject_capped():
    m = scan(b"Subject: =?utf-8?b?YQ1iAGM=?=\n\nx")     # "a\rb\0c"
    assert m.subject == "a\\rb\\x00c"
    m = scan(b"Subject: " + b"s" * 5000 + b"\n\nx")
    assert len(m.subject) == 2000


def test_rfc2047_subject_and_display_name():
    m = scan(b"From: =?iso-8859-1?q?J=F6rg?= <j@x.de>\n"
             b"Subject: =?UTF-8?Q?Nap=C5=82yw?= =?UTF-8?B?IEtsaWVudMOzdw==?= ok\n\nx")
    assert m.subject == "Napływ Klientów ok"
    assert m.from_name == "Jörg"


def test_unknown_charset_and_bad_base64():
    m = scan(b"Subject: =?x-unknown?q?caf=C3=A9?=\n\nx")
    assert m.subject == "café" and "charset-unknown" in m.defects
    m = scan(b"Subject: =?utf-8?b?!!!?=\n\nx")
    assert m.subject is not None


def test_8bit_header_replaced_and_flagged():
    m = scan(b"From: \xff\xfe <a@b.c>\nSubject: Gr\xc3\xbc\xc3\x9fe \xff\nMessage-ID: <\xe9@x>\n\nx")
    assert "header-8bit" in m.defects
    assert m.subject == "Grüße \ufffd"
    assert m.from_addr == "a@b.c"
    assert m.message_id == "\ufffd@x"
    # the key keeps the raw bytes of the Message-ID
    assert m.dedup_key == hashlib.sha256(
        b"mailarchive-dedup-v2\0mid\0\xe9@x\0" + blake3.blake3(b"x").digest()).digest()


# ------------------------------------------------------------------ J3 addresses

def test_j3_ambiguous_address_records_both():
    m = scan(b"From: alice@example.org(<bob@example.org>\nTo: carol@example.org(<dave@example.org>\n\nx")
    assert "address-ambiguous" in m.defects
    assert set(m.to) == {"carol@example.org", "dave@example.org"}
    assert m.from_addr in {"alice@example.org", "bob@example.org"}


def test_j3_address_in_display_name_is_also_a_search_key():
    m = scan(b'To: "boss@corp.example" <attacker@evil.example>\n\nx')
    assert set(m.to) == {"attacker@evil.example", "boss@corp.example"}
    assert "address-ambiguous" in m.defects


def test_plain_display_name_equal_to_address_is_not_ambiguous():
    m = scan(b'To: "a@b.c" <a@b.c>, d@e.f\n\nx')
    assert m.to == ["a@b.c", "d@e.f"] and m.defects == ["no-message-id", "date-missing", "from-missing"]


def test_semicolon_lists_and_groups():
    m = scan(b"To: a@x.org; b@x.org\nCc: undisclosed-recipients:;\nBcc: team: c@x.org, d@x.org;\n\nx")
    assert {"a@x.org", "b@x.org"} <= set(m.to)
    assert m.cc == []
    assert m.bcc == ["c@x.org", "d@x.org"]


def test_deep_comment_nesting_does_not_crash():
    m = scan(b"To: " + b"(" * 5000 + b"a@b.c\n\nx")
    assert not any(d.startswith("parse-error") for d in m.defects)
    assert "a@b.c" in m.to


def test_fast_address_path_agrees_with_getaddresses():
    cases = [
        'a@b.c', 'Name <A@B.c>', '"Last, First" <x@y.z>, plain@x.org,\tJohn  Q. Public <j@q.p>',
        'J\u00f6rg <j@x.de>', '=?utf-8?q?J=C3=B6rg?= <j@x.de>', 'a@b,,c@d,', ' "" <a@b>',
        '"open list:WATCHDOG (OSS)" <l@v.org>', 'x <a@b', '"a" b <c@d>', '"un <a@b>, c@d',
    ]
    for v in cases:
        fast = _fast_addresses(v)
        if fast is not None:
            assert fast == [(n, a.lower()) for n, a in getaddresses([v]) if a], v
    assert _fast_addresses('"a" b <c@d>') is None
    assert _fast_addresses("x <a@b") is None


# ------------------------------------------------------------------ J5 quadratic inputs

# The J5/J11 inputs are meant to make a parser go quadratic. Instead of a wall-clock limit
# (which flakes on a loaded machine) these tests bound the *work*: they record how much text
# reaches each step whose cost can grow faster than linearly (the stdlib header parser,
# getaddresses and the fast address path, RFC 2047 decoding) and assert it stays under the
# caps, whatever the size of the input.


def _record_work(monkeypatch) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {"parser": [], "addresses": [], "words": []}
    real_parser, real_ga, real_fast, real_dh = (
        headers._PARSER, headers.getaddresses, headers._fast_addresses, headers.decode_header)

    class _Parser:
        def parsebytes(self, block, *a, **k):
            sizes["parser"].append(len(block))
            return real_parser.parsebytes(block, *a, **k)

    def _ga(values, *a, **k):
        sizes["addresses"].append(sum(len(v) for v in values))
        return real_ga(values, *a, **k)

    def _fast(value):
        sizes["addresses"].append(len(value))
        return real_fast(value)

    def _dh(text):
        sizes["words"].append(len(text))
        return real_dh(text)

    monkeypatch.setattr(headers, "_PARSER", _Parser())
    monkeypatch.setattr(headers, "getaddresses", _ga)
    monkeypatch.setattr(headers, "_fast_addresses", _fast)
    monkeypatch.setattr(headers, "decode_header", _dh)
    return sizes


def _assert_bounded(sizes: dict[str, list[int]], max_header_bytes: int = 1 << 20) -> None:
    assert max(sizes["parser"], default=0) <= max_header_bytes, sizes["parser"]
    assert max(sizes["addresses"], default=0) <= headers.MAX_VALUE_CHARS, max(sizes["addresses"])
    assert max(sizes["words"], default=0) <= headers.MAX_VALUE_CHARS, max(sizes["words"])
    # and in total no step sees more text than the capped header block holds
    for step in ("parser", "addresses", "words"):
        assert sum(sizes[step]) <= max_header_bytes, (step, sum(sizes[step]))


class _StepClock:
    """A monotonic clock that advances a fixed step on every reading: deadlines become
    deterministic in the number of checks, independent of the machine's speed."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_j5_megabyte_of_semicolons_in_to(monkeypatch):
    raw = b"From: a@b.c\nTo: " + b";" * (1 << 20) + b"\nMessage-ID: <q@x>\n\nbody\n"
    work = _record_work(monkeypatch)
    m = scan(raw)
    _assert_bounded(work)
    assert "headers-capped" in m.defects
    assert m.to == []
    # the Message-ID line lies beyond the 1 MiB header cap, so it is not read
    assert m.message_id is None and "no-message-id" in m.defects
    assert len(m.dedup_key) == 32


def test_j5_hundred_thousand_addresses(monkeypatch):
    to = b", ".join(b"user%d@example.org" % i for i in range(100_000))
    raw = b"From: a@b.c\nMessage-ID: <many@x>\nTo: " + to + b"\n\nbody\n"
    work = _record_work(monkeypatch)
    m = scan(raw)
    _assert_bounded(work)
    assert "headers-capped" in m.defects
    assert m.message_id == "many@x"
    assert 0 < len(m.to) <= 10_000
    assert all(a.endswith("@example.org") for a in m.to)   # no partial address from the cut


def test_j5_many_to_headers_hit_the_address_cap(monkeypatch):
    raw = b"From: a@b.c\n" + b"".join(b"To: u%d@example.org\n" % i for i in range(30_000)) + b"\nx"
    work = _record_work(monkeypatch)
    m = scan(raw, max_addresses=1000)
    _assert_bounded(work)
    assert len(m.to) == 999 and "headers-capped" in m.defects


def test_j5_deadline_stops_with_parse_timeout(monkeypatch):
    raw = b"".join(b"To: " + b";" * 60_000 + b"\n" for _ in range(15)) + b"\nx"
    work = _record_work(monkeypatch)
    monkeypatch.setattr(headers, "time", SimpleNamespace(monotonic=_StepClock(0.02)))
    m = scan(raw, deadline=0.05)
    assert "parse-timeout" in m.defects
    # the deadline (a few clock readings) cut the parse short: not all 15 To values were parsed
    assert len(work["addresses"]) < 15, work["addresses"]
    assert len(m.dedup_key) == 32


def test_j5_long_encoded_word_run(monkeypatch):
    raw = b"Subject: " + b"=?utf-8?q?a?= " * 100_000 + b"\n\nx"
    work = _record_work(monkeypatch)
    m = scan(raw)
    _assert_bounded(work)
    assert "headers-capped" in m.defects and m.subject.startswith("aaaa")


def test_header_block_cap():
    raw = b"From: a@b.c\n" + b"X-Pad: " + b"p" * 200 + b"\n" * 1 + b"X-Pad2: " + b"q" * 5000 + b"\n\nbody"
    m = scan(raw, max_header_bytes=1000)
    assert "headers-capped" in m.defects
    assert m.from_addr == "a@b.c"
    assert m.header_size == raw.index(b"\n\n") + 1


# ------------------------------------------------------------------ J7 odd bytes

def test_j7_nul_bytes():
    m = scan(b"From: a@b.c\nSubject: a\x00b\n\nbo\x00dy\n")
    assert "nul-bytes" in m.defects
    assert m.subject == "a\\x00b"
    assert m.body_hash == blake3.blake3(b"bo\x00dy").digest()


def test_j7_bare_cr_and_mixed_line_endings():
    m = scan(b"From: a@b.c\r\nSubject: mixed\nTo: x@y.z\r\n\r\nline1\rstill1\r\nline2\n")
    assert m.subject == "mixed" and m.to == ["x@y.z"]
    assert m.body_hash == blake3.blake3(b"line1\rstill1\nline2").digest()
    # bare CR inside the header block goes through the compat32 parser
    m = scan(b"From: a@b.c\rSubject: cr\n\nbody")
    assert len(m.dedup_key) == 32


def test_j7_no_trailing_newline_same_key():
    assert scan(BASE.rstrip(b"\n")).dedup_key == scan(BASE).dedup_key


def test_utf8_bom_before_headers():
    m = scan(b"\xef\xbb\xbfFrom: <abuse@example.com>\nSubject: bom\n\nx")
    assert m.from_addr == "abuse@example.com" and m.subject == "bom" and "bom" in m.defects


def test_mixed_separator():
    h, b, d = split_message(b"A: 1\nB: 2\n\r\nbody\n")
    assert (h, b, d) == (b"A: 1\nB: 2\n", b"body\n", None)
    h, b, d = split_message(b"A: 1\r\n\r\nbody")
    assert (h, b, d) == (b"A: 1\r\n", b"body", None)


# ------------------------------------------------------------------ J9 dates

def test_j9_dates():
    def d(value: bytes):
        return scan(b"From: a@b.c\nDate: " + value + b"\n\nx")
    m = d(b"not a date")
    assert m.sent_date is None and "date-unparsable" in m.defects
    m = d(b"")
    assert m.sent_date is None and "date-unparsable" in m.defects
    m = d(b"Thu, 01 Jan 1970 00:00:00 -0000")  # the zero time stamp: kept, but before 1971, so implausible
    assert m.sent_date == datetime(1970, 1, 1, tzinfo=timezone.utc) and "date-no-zone" in m.defects
    assert "date-implausible" in m.defects
    assert "date-implausible" not in d(b"Fri, 1 Jan 1971 00:00:00 +0000").defects
    soon = datetime.now(timezone.utc) + timedelta(hours=12)
    assert "date-implausible" not in d(format_datetime(soon).encode()).defects
    m = d(format_datetime(soon + timedelta(days=2)).encode())  # more than a day ahead of the import
    assert m.sent_date is not None and "date-implausible" in m.defects
    m = d(b"Mon, 1 Jan 1900 00:00:00 +0000")
    assert m.sent_date.year == 1900 and "date-implausible" in m.defects
    m = d(b"Fri, 1 Jan 2100 00:00:00 +0000")
    assert m.sent_date.year == 2100 and "date-implausible" in m.defects
    m = d(b"Mon, 1 Jan 0001 00:00:00 +0100")
    assert "parse-error" not in " ".join(m.defects)
    m = d(b"Mon, 32 Foo 2024 99:99:99 +0000")
    assert m.sent_date is None
    assert "date-missing" in scan(b"From: a@b.c\n\nx").defects


def test_sent_date_is_utc_aware():
    m = scan(b"Date: Mon, 1 Jan 2024 23:30:00 -0500\n\nx")
    assert m.sent_date.tzinfo is timezone.utc
    assert m.sent_date == datetime(2024, 1, 2, 4, 30, tzinfo=timezone.utc)


# ------------------------------------------------------------------ J11 degenerate messages

def test_j11_zero_bytes():
    m = scan(b"")
    assert "empty-message" in m.defects
    assert m.body_hash == blake3.blake3(b"").digest() and len(m.dedup_key) == 32


def test_j11_headers_only():
    m = scan(b"From: a@b.c\nSubject: only headers\nMessage-ID: <h@x>\n")
    assert "no-header-body-separator" in m.defects
    assert m.subject == "only headers" and m.message_id == "h@x"
    assert m.body_hash == blake3.blake3(b"").digest()


def test_j11_not_a_header_at_all():
    m = scan(b"just some text\nwithout headers\n\nmore\n")
    assert "no-headers" in m.defects
    assert m.header_size == 0
    assert m.body_hash == blake3.blake3(b"just some text\nwithout headers\n\nmore").digest()


def test_j11_two_megabyte_single_header_line(monkeypatch):
    raw = b"From: a@b.c\nX-Huge: " + b"h" * (2 << 20) + b"\nSubject: after\n\nbody"
    work = _record_work(monkeypatch)
    m = scan(raw)
    _assert_bounded(work)
    assert "headers-capped" in m.defects
    assert m.from_addr == "a@b.c"
    assert m.body_hash == blake3.blake3(b"body").digest()


def test_j11_two_megabyte_subject_line():
    m = scan(b"Subject: " + b"s" * (2 << 20) + b"\n\nbody")
    assert "headers-capped" in m.defects
    assert len(m.subject) == 2000


def test_j1_body_line_inside_header_block():
    # a line that is neither header nor continuation: compat32 flags the missing separator
    m = scan(b"From: a@b.c\nthis is body text\nSubject: hidden\n\nrest\n")
    assert "no-header-body-separator" in m.defects
    assert m.from_addr == "a@b.c"


def test_j1_first_line_continuation():
    m = scan(b" continuation\nFrom: a@b.c\nSubject: s\n\nx")
    assert m.from_addr == "a@b.c" and m.subject == "s"
    assert "first-line-continuation" in m.defects
    assert m.body_hash == blake3.blake3(b"x").digest()


def test_folded_address_header():
    m = scan(b"From: Alice\n <a@b.c>\nTo: x@y.z,\r\n\tw@y.z\n\nx")
    assert m.from_addr == "a@b.c" and m.from_name == "Alice" and m.to == ["x@y.z", "w@y.z"]


# ------------------------------------------------------------------ never raise

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_scan_never_raises_on_random_bytes(raw):
    m = scan(raw)
    assert len(m.dedup_key) == 32 and len(m.body_hash) == 32
    assert all(isinstance(d, str) for d in m.defects)


_header_text = st.lists(
    st.tuples(
        st.sampled_from(["From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "X-Spam-Flag",
                         "X-Spam-Status", "Received", " ", "\t", "From ", ""]),
        st.text(alphabet=st.sampled_from(list("ab@.<>()\";:,= ?QqBb\\\r\n\t\x00\xe9\u2028=-_")) , max_size=60),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_header_text, st.sampled_from(["\n", "\r\n", "\r", "\n\r\n"]), st.binary(max_size=100))
def test_scan_never_raises_on_headerish_text(fields, eol, body):
    text = "".join(f"{name}:{value}{eol}" for name, value in fields)
    raw = text.encode("utf-8", "surrogatepass") + eol.encode() + body
    m = scan(raw)
    assert len(m.dedup_key) == 32
    for s in (m.subject or "", m.from_name or "", m.message_id or ""):
        s.encode("utf-8")   # storable text: no lone surrogates
    if m.subject is not None:
        assert "\n" not in m.subject and "\r" not in m.subject and len(m.subject) <= 2000
    if m.sent_date is not None:
        assert m.sent_date.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_body_normalisation_is_idempotent(body):
    once = normalise_body(body)
    assert normalise_body(once) == once
    assert not once.endswith((b"\n", b" ", b"\t"))


_BODY_BYTES = st.lists(st.sampled_from([b"a", b" ", b"\t", b"\r", b"\n", b"\r\n", b"From ", b"\xff"]), max_size=80).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(_BODY_BYTES, _BODY_BYTES, st.integers(min_value=0, max_value=5000))
def test_body_hash_without_copy_equals_the_normalised_hash(head, body, blank_tail):
    """The no-copy body hash (a view over the mail, taken when nothing inside needs normalising)
    gives exactly BLAKE3(normalise_body(body)), whatever the body and however long its blank tail."""
    raw = head + body + b"\n" * (blank_tail % 3) + b" " * blank_tail
    start = len(head)
    assert headers.hash_body(raw, start) == blake3.blake3(normalise_body(raw[start:])).digest()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=4))
def test_split_offsets_agree_with_split_message(raw, pos):
    header_end, body_start, defect = headers.split_offsets(raw, pos)
    assert (raw[pos:header_end], raw[body_start:], defect) == split_message(raw[pos:])


# ------------------------------------------------------------------ the usual Date form, read fast

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "May", "mar"]


@settings(max_examples=400, deadline=None)
@given(day=st.sampled_from(["", *[d + ", " for d in _DAYS]]), dd=st.integers(0, 40), mon=st.sampled_from(_MONTH_NAMES),
       year=st.integers(900, 9999), hh=st.integers(0, 25), mm=st.integers(0, 61), ss=st.integers(0, 61),
       sign=st.sampled_from("+-"), zh=st.integers(0, 25), zm=st.integers(0, 99),
       tail=st.sampled_from(["", " (UTC)", " (CET) x", "  "]), two=st.booleans())
def test_usual_date_form_reads_as_parsedate_to_datetime(day, dd, mon, year, hh, mm, ss, sign, zh, zm, tail, two):
    """_date_value's fast path gives what email.utils.parsedate_to_datetime gives (same instant, same zone,
    naive for -0000), or raises as it does, for the usual form and its near misses (F04 and the import)."""
    from email.utils import parsedate_to_datetime

    from toolkit.headers import _date_value

    value = f"{day}{dd:02d} {mon} {year} {hh:02d}:{mm:02d}:{ss:02d} {sign}{zh:02d}{zm:02d}{tail}".strip()
    if two:
        value = value.replace(f" {year} ", f" {year % 100:02d} ")
    try:
        want = parsedate_to_datetime(value)
    except Exception as exc:  # noqa: BLE001 - the fast path must raise alike
        with pytest.raises(type(exc)):
            _date_value(value)
        return
    got = _date_value(value)
    assert (got, got.tzinfo) == (want, want.tzinfo)


@settings(max_examples=400, deadline=None)
@given(_BODY_BYTES)
def test_crlf_to_lf_is_replace_whatever_the_carriage_returns(data):
    """The fast CRLF -> LF (delete the CRs when each is followed by a LF) equals bytes.replace, bare CRs
    (alone, doubled, at the end, after a LF) included."""
    assert headers.crlf_to_lf(data) == data.replace(b"\r\n", b"\n")
    for tricky in (b"a\rb\r\n", b"\r\r\n", b"x\r\n\r", b"\n\r", b"\r\n" * 3 + b"\r"):
        assert headers.crlf_to_lf(tricky + data) == (tricky + data).replace(b"\r\n", b"\n")
