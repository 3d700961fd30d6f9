"""importers/mbox_flags.py: the flags mbox writers keep in a message's header."""
from __future__ import annotations

from hypothesis import given, strategies as st

from importers.mbox_flags import MAX_FIELD, header_fields, read


def _found(header: bytes):
    return read(header_fields(header.splitlines(keepends=True)))


def test_mutt_status_and_x_status():
    f = _found(b"From: a@x\nStatus: RO\nX-Status: AF\nSubject: s\n\nStatus: R in the body\n")
    assert f.flags == {"\\Seen", "\\Answered", "\\Flagged"} and not f.expunged and f.folders == ()
    assert _found(b"Status: O\nX-Status: TD\n\n").flags == {"\\Draft", "\\Deleted"}


def test_thunderbird_status_bits_and_tags():
    f = _found(b"X-Mozilla-Status: 000D\nX-Mozilla-Status2: 00010000\nX-Mozilla-Keys: $label1 Junk  bad\\key\n\n")
    assert f.flags == {"\\Seen", "\\Flagged", "$label1", "Junk"} and f.expunged
    assert _found(b"X-Mozilla-Status: 0002\n\n").flags == {"\\Answered"}
    assert _found(b"X-Mozilla-Status: zzzz\n\n").flags == set()


def test_gmail_labels_folded_over_two_lines():
    f = _found(b'X-GM-THRID: 1\nX-Gmail-Labels: Inbox,Opened,\n Work/Projects,Starred\nFrom: a@x\n\n')
    assert f.folders == ("INBOX", "Work/Projects") and f.flags == {"\\Seen", "\\Flagged"}


def test_the_body_is_never_read():
    assert _found(b"From: a@x\n\nX-Status: F\nStatus: R\n").flags == set()


@given(st.binary(max_size=400))
def test_any_header_reads_without_an_exception(data):
    f = _found(data)
    assert all(isinstance(x, str) and x and " " not in x for x in f.flags)


def test_a_field_folded_over_a_huge_number_of_lines_is_read_up_to_its_cap():
    """A ``Status:`` field followed by 300,000 continuation lines: its value was joined line by line without
    end (quadratic copying, in the driver, where no watchdog runs); it stops growing past MAX_FIELD."""
    [(name, value)] = header_fields([b"Status: R\n"] + [b" RO\n"] * 300_000 + [b"\n"])
    assert name == b"status" and MAX_FIELD < len(value) <= MAX_FIELD + 4
    assert read([(name, value)]).flags == {"\\Seen"}
