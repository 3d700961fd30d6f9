"""Modified UTF-7 folder names (docs/reliability.md D10): RFC 3501 examples, round trips, lenient decoding."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from importers import utf7


@pytest.mark.parametrize(
    "text, wire",
    [
        ("INBOX", "INBOX"),
        ("&", "&-"),
        ("A&B", "A&-B"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
        ("Über/Ordner", "&ANw-ber/Ordner"),
        ("a/b.c/..", "a/b.c/.."),
        ("😀", "&2D3eAA-"),  # outside the BMP: a surrogate pair
    ],
)
def test_known_names(text, wire):
    assert utf7.encode(text) == wire
    assert utf7.decode_lenient(wire) == text
    assert utf7.decode_lenient(wire.encode("ascii")) == text


@given(st.text(min_size=0, max_size=60))
def test_round_trip_any_text(text):
    wire = utf7.encode(text)
    assert wire.isascii()
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert utf7.decode(wire) == text


def test_long_name_round_trips():
    name = "Ordner-ä" * 200
    assert utf7.decode_lenient(utf7.encode(name)) == name


@pytest.mark.parametrize("bad", ["&", "a&bc", "&AGE=-", "&A/w-", "&Jjo!-", "caf\u00e9"])
def test_invalid_names_raise_strict_and_pass_through_lenient(bad):
    with pytest.raises(ValueError):
        utf7.decode(bad)
    assert utf7.decode_lenient(bad) == bad


def test_undecodable_bytes_are_kept_readable():
    assert utf7.decode_lenient("Entwürfe".encode("utf-8")) == "Entwürfe"  # a server sending raw UTF-8
    assert utf7.decode_lenient(b"\xff&") == "\xff&"
