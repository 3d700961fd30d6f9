"""exporters/mbox_status.py: the flag fields of `export mbox --flags`, whole and streamed."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from exporters.mbox_status import HEADER_LIMIT, status_fields, status_stream, with_status
from importers.mbox_flags import header_fields, read

FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "$label1")


def _read_back(data: bytes) -> set[str]:
    return read(header_fields(data.splitlines(keepends=True))).flags


def test_fields_per_flag_and_the_importer_reads_them_back():
    assert status_fields(()) == b"Status: O\nX-Mozilla-Status: 0000\n"
    assert status_fields(("\\Seen", "\\Flagged", "\\Draft"), b"\r\n") == (
        b"Status: RO\r\nX-Status: FT\r\nX-Mozilla-Status: 0005\r\n")
    mail = b"From: a@example.org\nSubject: x\n\nbody\n"
    for n in range(1 << 5):
        flags = {f for i, f in enumerate(FLAGS[:5]) if n >> i & 1}
        assert _read_back(with_status(mail, flags)) == flags


def test_old_fields_go_folded_lines_and_all_and_the_line_ending_is_the_header_s():
    mail = (b"Status: RO\r\nX-Status: AF\r\n continued\r\nSubject: s\r\nx-mozilla-status: 0003\r\n"
            b"X-Statuses: kept\r\n\r\nStatus: in the body\r\n")
    out = with_status(mail, ())
    assert out == (b"Subject: s\r\nX-Statuses: kept\r\nStatus: O\r\nX-Mozilla-Status: 0000\r\n"
                   b"\r\nStatus: in the body\r\n")
    assert _read_back(out) == set()


def test_a_message_without_a_header_end_gets_the_fields_first():
    assert with_status(b"Subject: only a header", ("\\Seen",)) == (
        b"Status: RO\nX-Mozilla-Status: 0001\nSubject: only a header")
    assert with_status(b"\nno header\n", ()) == b"Status: O\nX-Mozilla-Status: 0000\n\nno header\n"
    # a blanks-only line ends the header, as the importer reads it
    assert with_status(b"A: 1\n \t\nbody\n", ()) == b"A: 1\nStatus: O\nX-Mozilla-Status: 0000\n \t\nbody\n"


_line = st.one_of(st.sampled_from([b"Status: R", b"X-Status: A", b" folded", b"Subject: x", b"", b" ", b"From x"]),
                  st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")))


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=30), st.sampled_from([b"\n", b"\r\n"]), st.lists(st.integers(1, 40), max_size=20),
       st.sets(st.sampled_from(FLAGS)))
def test_the_streamed_message_is_the_whole_one(lines, eol, cuts, flags):
    data = eol.join(lines)
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos:pos + c])
        pos += c
    chunks.append(data[pos:])
    assert b"".join(status_stream(chunks, flags)) == with_status(data, flags)


def test_a_header_longer_than_the_limit_streams_with_the_fields_first():
    data = b"X-Long: " + b"a" * HEADER_LIMIT + b"\n\nbody\n"
    out = b"".join(status_stream([data[i:i + 65536] for i in range(0, len(data), 65536)], ("\\Seen",)))
    assert out == b"Status: RO\nX-Mozilla-Status: 0001\n" + data
