"""Fuzz target: export file naming.

Invariants: ``message_filename`` and ``safe_component`` never raise on any subject or
name; the result is one safe path component (no "/" or NUL, not "." or "..", at most
255 bytes in UTF-8, no bidirectional control characters), ``message_filename`` keeps
the message number and the .eml suffix; time is linear in the subject length.
"""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exporters.naming import _BIDI, message_filename, safe_component
from tests.fuzz._support import FUZZ, amplified, assert_linear, mutated, seed_files

pytestmark = [pytest.mark.fuzz, pytest.mark.security]


@pytest.fixture(scope="module")
def seeds() -> list[str]:
    """Subject lines of real mails."""
    out = []
    for raw in seed_files("e-real-corpus", limit=100):
        for line in raw.split(b"\n"):
            if line.lower().startswith(b"subject:"):
                out.append(line[8:].strip().decode("utf-8", "replace"))
                break
    return out or ["hello"]


def _safe(name: str) -> None:
    assert name and name not in (".", "..") and "/" not in name and "\0" not in name
    assert len(name.encode("utf-8", "surrogatepass")) <= 255
    assert not any(ch in _BIDI for ch in name)


@FUZZ
@given(data=st.data(), msg_id=st.integers(0, 2**62), sent=st.one_of(st.none(), st.datetimes(timezones=st.just(dt.timezone.utc))))
@example(data=None, msg_id=1, sent=None)
def test_names(seeds, data, msg_id, sent):
    if data is None:
        subject = "\u202e" + "_" * 5000 + "é" * 5000
    else:
        subject = data.draw(st.sampled_from(seeds))
        if data.draw(st.booleans()):
            subject = data.draw(mutated([subject.encode("utf-8", "surrogatepass")])).decode("utf-8", "replace")
        if data.draw(st.booleans()):
            subject = data.draw(st.text(max_size=300))
    name = message_filename(msg_id, subject, sent)
    _safe(name)
    assert name.endswith(".eml") and f"{msg_id:06d}" in name
    _safe(safe_component(subject))
    assert_linear(lambda s: message_filename(msg_id, s, sent), amplified(subject or "x", 8 * 1024))
    assert_linear(safe_component, amplified(subject or "x", 8 * 1024))
