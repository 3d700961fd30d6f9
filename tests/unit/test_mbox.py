"""The mbox splitter and importer (docs/reliability.md L1-L7, L9, A5, C7/K3 streaming)."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.mbox import (
    CL_IGNORED,
    CL_USED,
    NO_BLANK_BEFORE,
    NO_TRAILING_NEWLINE,
    POSSIBLE_FALSE_SPLIT,
    MboxImporter,
    MboxSplitter,
    folder_name,
    from_line_date,
    is_from_line,
)
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail, SourceProblem

F1 = b"From alice@example.com Mon Jan  7 09:15:00 2019\n"
F2 = b"From bob@example.org Tue Jan  8 10:00:00 2019\n"
F3 = b"From carol@example.net Wed Jan  9 11:30:00 2019\n"


def msg(subject: str, body: bytes = b"Hello.\n", extra: bytes = b"") -> bytes:
    return b"Subject: " + subject.encode() + b"\n" + extra + b"\n" + body


def split(data: bytes, variant: str = "auto", block: int = 1 << 20):
    sp = MboxSplitter(io.BytesIO(data), variant, block=block)
    out = list(sp)
    assert sp.prefix_length + sum(m.end_offset - m.offset for m in out) == len(data)  # no byte unaccounted
    for a, b in zip(out, out[1:]):
        assert a.end_offset == b.offset
    return out


def test_plain_mbox_raw_keeps_last_newline_and_drops_separator():
    m1, m2 = msg("one"), msg("two")
    out = split(F1 + m1 + b"\n" + F2 + m2 + b"\n")
    assert [m.raw for m in out] == [m1, m2]
    assert [m.separator for m in out] == [b"\n", b"\n"]
    assert out[1].offset == len(F1 + m1) + 1
    assert out[0].from_line == F1 and not out[0].flags


def test_L1_from_line_in_body_without_blank_line_does_not_split():
    body = b"See below.\nFrom here on the rules change.\nFrom alice@example.com Mon Jan  7 09:15:00 2019\nend\n"
    out = split(F1 + msg("one", body) + b"\n")
    assert len(out) == 1 and out[0].raw == msg("one", body)


def test_L1_text_from_lines_after_blank_line_are_not_separators():
    body = b"Hi\n\nFrom here on, all is new.\n\nFrom time to time\n\nFrom Russia with love\n"
    out = split(F1 + msg("one", body) + b"\n" + F2 + msg("two"))
    assert len(out) == 2 and out[0].raw == msg("one", body)
    for text in (b"From here on", b"From time to time", b"From experience: start early", b"From: x@y"):
        assert not is_from_line(text)


def test_L2_unquoted_from_line_after_blank_line_splits_and_flags_both_halves():
    body = b"Hi\n\nFrom x@y Sat Jan  3 01:05:34 1996\nthe rest of the body\n"
    out = split(F1 + msg("one", body) + b"\n" + F2 + msg("two") + b"\n")
    assert len(out) == 3
    assert POSSIBLE_FALSE_SPLIT in out[0].flags and POSSIBLE_FALSE_SPLIT in out[1].flags
    assert POSSIBLE_FALSE_SPLIT not in out[2].flags
    assert out[1].raw == b"the rest of the body\n"


def test_L2_consistent_content_length_keeps_the_body_whole():
    body = b"Hi\n\nFrom x@y Sat Jan  3 01:05:34 1996\nthe rest of the body\n"
    m1 = msg("one", body, b"Content-Length: %d\n" % len(body))
    out = split(F1 + m1 + b"\n" + F2 + msg("two") + b"\n")
    assert [m.raw for m in out] == [m1, msg("two")]
    assert CL_USED in out[0].flags and out[0].variant == "mboxcl"


@pytest.mark.parametrize("delta", [+7, -5, +10_000])
def test_L5_lying_content_length_is_ignored_and_never_swallows(delta):
    body = b"Hi\n\nsome text\nmore text\n"
    m1 = msg("one", body, b"Content-Length: %d\n" % (len(body) + delta))
    out = split(F1 + m1 + b"\n" + F2 + msg("two") + b"\n" + F3 + msg("three"))
    assert [m.raw for m in out] == [m1, msg("two"), msg("three")]
    assert CL_IGNORED in out[0].flags


def test_L5_content_length_as_long_as_two_messages_does_not_swallow_the_next():
    m2 = msg("two", extra=b"Content-Length: 7\n")
    lying = len(b"Hello.\n") + 1 + len(F2) + len(m2)  # ends exactly at F3: consistent-looking
    m1 = msg("one", extra=b"Content-Length: %d\n" % lying)
    out = split(F1 + m1 + b"\n" + F2 + m2 + b"\n" + F3 + msg("three"))
    assert [m.raw for m in out] == [m1, m2, msg("three")]
    assert CL_IGNORED in out[0].flags


def test_L5_correct_content_length_mboxcl2_without_blank_lines():
    b1 = b"line\n\nFrom y@z Mon Jan  5 08:50:15 2004\nstill body\n"
    m1 = msg("one", b1, b"Content-Length: %d\n" % len(b1))
    m2 = msg("two", b"x\n", b"Content-Length: 2\n")
    out = split(F1 + m1 + F2 + m2)
    assert [m.raw for m in out] == [m1, m2]
    assert out[0].separator == b""


def test_L3_mboxrd_unquotes_exactly_one_level_only_in_mboxrd():
    body = b">From the desk\n\n>>From here on\n>>>From deep\n> From not quoted\n"
    data = F1 + msg("one", body) + b"\n"
    rd = split(data, "mboxrd")[0]
    assert rd.raw == msg("one", b"From the desk\n\n>From here on\n>>From deep\n> From not quoted\n")
    assert rd.unquoted == 3 and rd.variant == "mboxrd"
    for variant in ("auto", "mboxo", "mboxcl", "mboxcl2"):   # L4: never unquoted otherwise
        assert split(data, variant)[0].raw == msg("one", body)


def requote(raw: bytes) -> bytes:
    return re.sub(rb"(?m)^(>*From )", rb">\1", raw)


def test_L3_round_trip_requoting_gives_the_original_bytes():
    body = b"x\n>From a\n>>From b\nFrom c is not at line start? no:\n"
    data = F1 + requote(msg("one", body)) + b"\n"
    out = split(data, "mboxrd")
    assert out[0].raw == msg("one", body)
    assert out[0].from_line + requote(out[0].raw) + out[0].separator == data


def test_L4_mboxo_quoted_line_stored_as_is_and_variant_recorded():
    data = F1 + msg("one", b">From experience: start early.\n") + b"\n"
    m = split(data, "mboxo")[0]
    assert b">From experience" in m.raw and m.variant == "mboxo"
    assert split(data)[0].variant == "unknown"


def test_L6_from_line_forms():
    assert is_from_line(b"From u2@a.invalid (comment) Sat Jul 27 10:00:00 2019\n")
    assert is_from_line(b"From MAILER-DAEMON Sun Aug  7 11:40:37 2022 extra info\n")
    assert is_from_line(b"From - Mon Jun  3 12:50:27 1996\n")
    assert is_from_line(b"From -\n") and is_from_line(b"From - \r\n") and is_from_line(b"From \n")
    assert is_from_line(b"From 1844347792267117879@xxx\n")                     # GYB without a date
    assert is_from_line(b"From jgb at example.com  Thu Apr 14 11:06:56 2016\n")  # Pipermail
    assert is_from_line(b"From klopp Mon Jan  5 08:50:15 +0100 2004\n")
    assert is_from_line(b"From david@coppit.org Sat Sep  1 20:58 EDT 2001\n")
    assert is_from_line(b"From a@b 2019-01-07 09:15:00\n")                      # non-asctime
    assert is_from_line(b"From a@b Mon, 7 Jan 2019 09:15:00 +0000\n")
    assert from_line_date(F1).isoformat() == "2019-01-07T09:15:00+00:00"
    assert from_line_date(b"From klopp Mon Jan  5 08:50:15 +0100 2004\n").isoformat() == "2004-01-05T08:50:15+01:00"
    assert from_line_date(b"From -\n") is None
    out = split(b"From -\n" + msg("one") + b"\nFrom u2@a.invalid (comment) Sat Jul 27 10:00:00 2019\n" + msg("two"))
    assert len(out) == 2 and out[1].date.year == 2019


def test_L6_separator_without_blank_line_needs_a_header_after_it():
    data = F1 + msg("one", b"text\n") + b"From - \n" + msg("two", b"end\n")
    out = split(data)
    assert [m.raw for m in out] == [msg("one", b"text\n"), msg("two", b"end\n")]
    assert NO_BLANK_BEFORE in out[1].flags and out[0].separator == b""


def test_L7_crlf_mixed_endings_and_no_trailing_newline():
    crlf = lambda b: b.replace(b"\n", b"\r\n")
    data = crlf(F1 + msg("one") + b"\n" + F2 + msg("two") + b"\n")
    out = split(data)
    assert [m.raw for m in out] == [crlf(msg("one")), crlf(msg("two"))]
    assert out[0].separator == b"\r\n"
    mixed = F1 + crlf(msg("one")) + b"\n" + crlf(F2) + msg("two", b"last line")
    out = split(mixed)
    assert [m.raw for m in out] == [crlf(msg("one")), msg("two", b"last line")]
    assert NO_TRAILING_NEWLINE in out[1].flags


def test_L7_empty_and_garbage_prefix():
    assert split(b"") == []
    sp = MboxSplitter(io.BytesIO(b"garbage line\nmore\n" + F1 + msg("one")))
    out = list(sp)
    assert len(out) == 1 and sp.prefix_length == len(b"garbage line\nmore\n") and not sp.prefix_blank_only
    sp = MboxSplitter(io.BytesIO(b"\n\n" + F1 + msg("one")))
    assert len(list(sp)) == 1 and sp.prefix_length == 2 and sp.prefix_blank_only
    sp = MboxSplitter(io.BytesIO(b"no mbox at all\n"))
    assert list(sp) == [] and sp.prefix_length == 15


def test_L9_from_line_inside_qp_part_without_blank_line_does_not_split():
    body = (b"--b\nContent-Transfer-Encoding: quoted-printable\n\nwrapped so that the next line=\n"
            b"From x@y Sat Jan  3 01:05:34 1996 begins here\n--b--\n")
    out = split(F1 + msg("one", body) + b"\n" + F2 + msg("two"))
    assert [m.raw for m in out] == [msg("one", body), msg("two")]


def test_small_blocks_give_the_same_split():
    data = F1 + msg("one", b"a\n" * 50) + b"\n" + F2 + msg("two", b"From here\n" * 30) + b"\n" + F3 + msg("three")
    assert [m.raw for m in split(data, block=7)] == [m.raw for m in split(data)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([
    b"plain text", b"", b"From here on", b"From x@y Sat Jan  3 01:05:34 1996", b">From quoted",
    b">>From twice", b"From - ", b"Subject: not a header here", b"\r",
]), min_size=1, max_size=8), min_size=1, max_size=6))
def test_L3_property_mboxrd_write_then_split_gives_the_messages_back(bodies):
    originals = [msg(f"m{i}", b"".join(line + b"\n" for line in body)) for i, body in enumerate(bodies)]
    data = b"".join(F1 + requote(m) + b"\n" for m in originals)
    out = split(data, "mboxrd")
    assert [m.raw for m in out] == originals


# -- compressed files and the importer ----------------------------------------------------------

SAMPLE = F1 + msg("one") + b"\n" + F2 + msg("two", b">From x\n") + b"\n" + F3 + msg("three") + b"\n"


def scan(path, cursor=None, variant="auto"):
    rep = ListReporter()
    items = list(MboxImporter(str(path), variant=variant).scan(cursor, rep))
    return items, rep


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_compressed_files_give_the_same_messages(tmp_path, suffix, compress):
    plain = tmp_path / "box.mbox"
    plain.write_bytes(SAMPLE)
    packed = tmp_path / ("box.mbox" + suffix)
    packed.write_bytes(compress(SAMPLE))
    a, _ = scan(plain)
    b, _ = scan(packed)
    assert [(i.content(), i.ref, i.folder) for i in a] == [(i.content(), i.ref.replace(suffix, ""), i.folder) for i in b]
    assert len(a) == 3 and a[0].folder == "box" and folder_name("x.mbox.gz") == "x"


def test_importer_items_flags_and_dates(tmp_path):
    p = tmp_path / "box.mbox"
    p.write_bytes(SAMPLE)
    items, rep = scan(p, variant="mboxrd")
    assert all(isinstance(i, SourceMail) for i in items)
    assert items[1].content() == msg("two", b"From x\n") and items[1].ref == f"box.mbox@{len(F1 + msg('one')) + 1}"
    assert items[0].internal_date.isoformat() == "2019-01-07T09:15:00+00:00"
    assert items[0].flags == ("variant=mboxrd",)
    assert any("3 messages" in m for m in rep.infos)


def test_importer_empty_file_warns_and_garbage_prefix_is_a_problem(tmp_path):
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"")
    items, rep = scan(empty)
    assert items == [] and any("empty" in w for w in rep.warnings)
    junk = tmp_path / "junk.mbox"
    junk.write_bytes(b"#!/bin/sh\necho\n" + SAMPLE)
    items, _ = scan(junk)
    assert isinstance(items[0], SourceProblem) and items[0].ref == "junk.mbox@0"
    assert "15 bytes before the first From_ line are not a message" in items[0].message
    assert sum(isinstance(i, SourceMail) for i in items) == 3


def test_A5_appended_mbox_resumes_after_the_cursor(tmp_path):
    p = tmp_path / "box.mbox"
    p.write_bytes(SAMPLE)
    first, _ = scan(p)
    cursor = first[1].cursor                 # interrupted after message 2
    with open(p, "ab") as f:
        f.write(F1 + msg("four") + b"\n")
    rest, rep = scan(p, cursor)
    assert [i.content() for i in rest] == [msg("three"), msg("four")] and not rep.warnings
    assert rest[0].ref == first[2].ref


@pytest.mark.parametrize("compressed", [False, True])
def test_A5_rewritten_prefix_warns_and_restarts(tmp_path, compressed):
    p = tmp_path / "box.mbox"
    write = (lambda d: p.write_bytes(gzip.compress(d))) if compressed else p.write_bytes
    write(SAMPLE)
    cursor = scan(p)[0][1].cursor
    write(SAMPLE.replace(b"Subject: two", b"Subject: 2wo"))
    items, rep = scan(p, cursor)
    assert len(items) == 3 and any("rewritten" in w for w in rep.warnings)
    write(SAMPLE[:20])                          # shorter than the cursor
    items, rep = scan(p, cursor)
    assert any("rewritten" in w for w in rep.warnings)


def test_A5_compressed_resume_skips_to_the_cursor(tmp_path):
    p = tmp_path / "box.mbox.gz"
    p.write_bytes(gzip.compress(SAMPLE))
    cursor = scan(p)[0][0].cursor
    items, rep = scan(p, cursor)
    assert [i.content() for i in items] == [msg("two", b">From x\n"), msg("three")] and not rep.warnings


def test_A5_cursor_of_an_older_run_with_a_sha256_still_resumes(tmp_path):
    """Cursors written before the CRC-32 check carry the region's SHA-256; both kinds resume."""
    p = tmp_path / "box.mbox"
    p.write_bytes(SAMPLE)
    first, _ = scan(p)
    cursor = dict(first[1].cursor)
    assert cursor["crc32"] == zlib.crc32(SAMPLE[cursor["start"]:cursor["offset"]])
    region = SAMPLE[cursor["start"]:cursor["offset"]]
    legacy = {k: v for k, v in cursor.items() if k != "crc32"} | {"sha256": hashlib.sha256(region).hexdigest()}
    rest, rep = scan(p, legacy)
    assert [i.content() for i in rest] == [msg("three")] and not rep.warnings
    legacy["sha256"] = "0" * 64
    rest, rep = scan(p, legacy)
    assert len(rest) == 3 and any("rewritten" in w for w in rep.warnings)
