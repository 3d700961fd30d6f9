"""Preparing a mail splits its bytes into header block and body once (issue 15, point 4).

The journal check, the journal parse and the header scan all read the header block; ``prepare``
splits the mail once and hands the split on. A journal report's original is split once too. The
split function is wrapped to count its calls per byte string it was given.
"""
from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.corpora import REPO
from tests.unit.test_journal import ENVELOPE, ORIGINAL, build
from toolkit import headers, journal
from toolkit.headers import scan
from toolkit.prepare import prepare

ARCHIVE = uuid.UUID(int=1)


@pytest.fixture
def splits(monkeypatch) -> Counter:
    """Counts ``split_offsets`` calls, and the compiled whole-mail split's, by the bytes they split (wherever the
    modules look the functions up)."""
    counts: Counter = Counter()
    real = headers.split_offsets

    def counting(raw, pos=0):
        counts[bytes(raw)] += 1
        return real(raw, pos)

    monkeypatch.setattr(headers, "split_offsets", counting)
    monkeypatch.setattr(journal, "split_offsets", counting, raising=False)  # a module that imported it by name
    native = headers._native_split  # the compiled split of a whole mail (toolkit/_native.c split_mail)
    if native is not None:
        def counting_native(raw):
            counts[bytes(raw)] += 1
            return native(raw)
        monkeypatch.setattr(headers, "_native_split", counting_native)
    return counts


def _prepare(raw: bytes, splits: Counter):
    """prepare() of raw without sealing; the splits it made; and a scan of the archived bytes on their own
    (which the prepared meta must equal)."""
    splits.clear()
    p = prepare(raw, None, ARCHIVE, None, limit=None)
    made = Counter(splits)
    return p, made, scan(p.data if p.data is not None else raw)


def test_an_ordinary_mail_is_split_once(splits):
    p, made, alone = _prepare(ORIGINAL, splits)
    assert made == Counter({ORIGINAL: 1})
    assert p.meta == alone and p.meta.message_id == "q1.2024@example.org"


def test_a_mail_with_a_bom_is_split_once(splits):
    raw = b"\xef\xbb\xbf" + ORIGINAL
    p, made, alone = _prepare(raw, splits)
    assert made == Counter({raw: 1})
    assert "bom" in p.meta.defects and p.meta == alone


@pytest.mark.parametrize("name", ["built", "journal-report-1.eml", "journal-report-2.eml"])
def test_a_journal_report_and_its_original_are_split_once_each(splits, name):
    raw = build(ENVELOPE) if name == "built" else (REPO / "sample_data" / "journal" / name).read_bytes()
    p, made, alone = _prepare(raw, splits)
    assert "journal-unwrapped" in p.defects
    assert made[raw] == 1 and made[p.data] == 1
    assert max(made.values()) == 1  # MIME parts are split once each as well
    assert p.meta == alone


def test_a_journal_of_journal_splits_each_level_once(splits):
    inner = build(ENVELOPE, boundary="_inner_")
    raw = build(["Sender: journal@example.com", "Recipient: archive@example.com"], originals=[inner],
                boundary="_outer_")
    p, made, alone = _prepare(raw, splits)
    assert "journal-of-journal" in p.defects and p.data == ORIGINAL
    assert made[raw] == 1 and made[inner] == 1 and made[ORIGINAL] == 1
    assert max(made.values()) == 1
    assert p.meta == alone
