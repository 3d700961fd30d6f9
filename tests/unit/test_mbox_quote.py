"""mboxrd quoting of an export (exporters/mbox.py ``quote``, ``has_bare_from``, ``quote_stream``) gives exactly what
the ``^…$`` patterns with re.M it replaced give (``^(>*From )`` quoted, ``^From[ \\t]*\\r?$`` refused), on random
messages built of the characters those lines are made of, and on the bench corpus's kind of mail; a stream cut
anywhere gives the bytes of the whole."""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.mbox import Unrepresentable, has_bare_from, quote, quote_stream

OLD_QUOTE = re.compile(rb"^(>*From )", re.M)
OLD_BARE_FROM = re.compile(rb"^From[ \t]*\r?$", re.M)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

pieces = st.sampled_from([b"From", b"From ", b">", b">>", b" ", b"\t", b"\r", b"\n", b"\r\n", b"x", b"From:", b"F",
                          b"rom", b">From ", b"From\n", b"\nFrom \n"])
messages = st.lists(pieces, max_size=40).map(b"".join)


def old_quote(data: bytes) -> bytes | None:
    if OLD_BARE_FROM.search(data):
        return None
    return OLD_QUOTE.sub(rb">\1", data)


def new_quote(data: bytes) -> bytes | None:
    try:
        return quote(data)
    except Unrepresentable:
        return None


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages)
def test_quote_is_the_multiline_patterns(data):
    assert has_bare_from(data) == (OLD_BARE_FROM.search(data) is not None)
    assert new_quote(data) == old_quote(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages, st.lists(st.integers(0, 200), max_size=5))
def test_a_stream_quotes_as_the_whole(data, cuts):
    if OLD_BARE_FROM.search(data):
        return
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert b"".join(quote_stream(chunks)) == old_quote(data)


@pytest.mark.parametrize("data, want", [
    (b"From a\n>From b\nx\n>>From c\n", b">From a\n>>From b\nx\n>>>From c\n"),
    (b"Subject: x\n\nFrom the start\nFrom: not quoted\n", b"Subject: x\n\n>From the start\nFrom: not quoted\n"),
    (b"x\r\nFrom y\r\n", b"x\r\n>From y\r\n"),
])
def test_known_lines(data, want):
    assert quote(data) == want


@pytest.mark.parametrize("data", [b"From\n", b"x\nFrom \t\r\n", b"a\nFrom", b"From\r"])
def test_a_bare_from_line_is_refused(data):
    with pytest.raises(Unrepresentable):
        quote(data)
