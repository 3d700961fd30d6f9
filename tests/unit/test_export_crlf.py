"""``exporters.imap.crlf`` (what an IMAP APPEND carries) gives exactly what the pattern it replaced gives: a CR put before
every LF that has none, nothing else changed; on random bytes made of CR, LF and text."""
from __future__ import annotations

import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.imap import crlf

OLD_BARE_LF = re.compile(rb"(?<!\r)\n")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\r\n", b"\n\r", b"x", b"From "]), max_size=50).map(b"".join))
def test_crlf_is_the_lookbehind_pattern(data):
    assert crlf(data) == OLD_BARE_LF.sub(b"\r\n", data)


def test_known():
    assert crlf(b"a\nb\r\nc\rd\r\r\n") == b"a\r\nb\r\nc\rd\r\r\n"
    assert crlf(b"") == b""
