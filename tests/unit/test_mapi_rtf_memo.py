"""The builder de-encapsulates an RTF body it has seen lately only once: the same bytes and the same
problems come out, and RTFDE (tens of milliseconds a body) runs once per distinct body."""
from __future__ import annotations

import pytest

from toolkit import mapi

HTML_RTF = (b"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl{\\f0\\fswiss Arial;}}"
            b"{\\*\\htmltag64 <html>}{\\*\\htmltag64 <body>}\\htmlrtf {\\htmlrtf0 %s\\htmlrtf }\\htmlrtf0 "
            b"{\\*\\htmltag72 </body>}{\\*\\htmltag72 </html>}}")
BROKEN_RTF = b"{\\rtf1\\ansi\\fromhtml1 {{{ \\htmlrtf0"


def _msg(rtf: bytes) -> mapi.MapiMessage:
    m = mapi.MapiMessage(props={mapi.PR_SUBJECT: "s", mapi.PR_BODY: "plain"})
    m.rtf = rtf
    return m


@pytest.fixture
def counted(monkeypatch):
    """The RTF bodies handed to RTFDE's de-encapsulator (the memo starts empty)."""
    from collections import OrderedDict

    monkeypatch.setattr(mapi, "_RTF_MEMO", OrderedDict(), raising=False)
    calls = []
    real = mapi._deencapsulator

    def counting():
        cls = real()
        return lambda rtf: calls.append(rtf) or cls(rtf)

    monkeypatch.setattr(mapi, "_deencapsulator", counting)
    return calls


def test_the_same_rtf_body_is_de_encapsulated_once_with_the_same_bytes(counted):
    first = mapi.build(_msg(HTML_RTF % b"hello"))
    assert b"text/html" in first.raw and b"hello" in first.raw
    again = mapi.build(_msg(HTML_RTF % b"hello"))
    assert again.raw == first.raw and again.problems == first.problems
    other = mapi.build(_msg(HTML_RTF % b"other"))
    assert b"other" in other.raw
    assert len(counted) == 2


def test_a_body_that_fails_gives_its_problem_every_time(counted):
    one = mapi.build(_msg(BROKEN_RTF))
    two = mapi.build(_msg(BROKEN_RTF))
    assert one.problems and one.problems == two.problems and one.raw == two.raw
    assert len(counted) == 1


def test_the_memo_is_bounded(counted):
    for k in range(mapi._RTF_MEMO_ITEMS + 5):
        mapi.build(_msg(HTML_RTF % str(k).encode()))
    assert len(mapi._RTF_MEMO) == mapi._RTF_MEMO_ITEMS
    mapi.build(_msg(HTML_RTF % b"0"))  # the oldest was dropped: done again
    assert len(counted) == mapi._RTF_MEMO_ITEMS + 6
    big = HTML_RTF % (b"x" * (mapi._RTF_MEMO_MAX_BYTES + 1))
    mapi.build(_msg(big))
    mapi.build(_msg(big))
    assert len(counted) == mapi._RTF_MEMO_ITEMS + 8  # large bodies are not kept
