"""Fuzz target: Maildir file and folder names.

Invariants: flag parsing, the info-suffix test, path classification, the time in a
name and folder-name decoding (modified UTF-7, Maildir++ dots) never raise, return
what their signatures say, and take linear time on names repeated to 64 KiB.
"""
from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importers import maildir as md
from tests.fuzz._support import FUZZ, amplified, assert_linear, seed_names

pytestmark = [pytest.mark.fuzz, pytest.mark.security]

NAME_CHARS = st.sampled_from(list(":!;,2SRFTDPab.-&+_ 0123456789\uf03a\x00é") + [":2,", "&AOk-", "&", ".."])


@pytest.fixture(scope="module")
def seeds() -> list[str]:
    return seed_names("b-mbox-maildir")


def _check(name: str) -> None:
    flags = md.parse_flags(name)
    assert isinstance(flags, tuple) and all(isinstance(f, str) for f in flags)
    raw = name.encode("utf-8", "surrogateescape")
    assert isinstance(md.has_info_suffix(raw), bool)
    kind, folder = md.classify(b"cur/" + raw)
    assert kind == md.MESSAGE and folder == b""
    md.classify(raw)
    assert md._name_time(raw) is None or isinstance(md._name_time(raw), float)
    assert isinstance(md.folder_name(raw), str)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_names(seeds, data):
    if data is None:
        name = "1234567890.M1P2.host:2," + "S" * 3000 + ":"
    else:
        name = data.draw(st.sampled_from(seeds))
        if data.draw(st.booleans()):
            cut = data.draw(st.integers(0, len(name)))
            name = name[:cut] + "".join(data.draw(st.lists(NAME_CHARS, max_size=40))) + name[cut:]
    _check(name)
    assert_linear(_check, amplified(name, 8 * 1024))
