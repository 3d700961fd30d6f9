"""Header scan over the shared corpora: a-mime-edge (every file) and e-real-corpus (with its index)."""
from __future__ import annotations

import csv
import functools
import os
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

import pytest

from toolkit.headers import (
    _WANTED,
    _date_value,
    _fast_addresses,
    _text,
    _unfold,
    _wanted_fields,
    header_fields,
    scan,
    split_message,
)

CORPORA = Path(os.environ.get("MAILARCHIVE_CORPORA",
                              Path(__file__).resolve().parents[2].parent / "shared" / "corpora"))
MIME_EDGE = CORPORA / "a-mime-edge"
REAL = CORPORA / "e-real-corpus" / "linux-watchdog-2022-2023"
REAL_INDEX = CORPORA / "e-real-corpus" / "linux-watchdog-2022-2023.index.tsv"


def _need(path: Path) -> None:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing in CI: {path}")
        pytest.skip(f"corpus not found: {path} (set MAILARCHIVE_CORPORA)")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# The corpora are read-only and scan / split_message / the compat32 parse are pure: several tests
# walk the same ~6,000 files, so each file is read, scanned and parsed once per session.
@functools.lru_cache(maxsize=None)
def _scan(path: Path):
    return scan(path.read_bytes())


@functools.lru_cache(maxsize=None)
def _block(path: Path) -> bytes:
    return split_message(path.read_bytes())[0]


@pytest.fixture(scope="module", autouse=True)
def _drop_caches():
    yield
    for cached in (_scan, _block, _compat32_fields):
        cached.cache_clear()


def _collapse(s: str | None) -> str:
    return " ".join((s or "").split())


def test_mime_edge_every_file_scans():
    _need(MIME_EDGE)
    files = _files(MIME_EDGE)
    assert len(files) > 500
    errors, keys = [], set()
    for path in files:
        m = scan(path.read_bytes())
        assert len(m.dedup_key) == 32 and len(m.body_hash) == 32, path
        keys.add(m.dedup_key)
        errors += [(path.name, d) for d in m.defects if d.startswith("parse-error")]
    assert errors == []
    assert len(keys) > 0.8 * len(files)    # keys are not degenerate


def test_mime_edge_known_facts():
    _need(MIME_EDGE)
    spam = scan((MIME_EDGE / "thunderbird-mailnews/test-data/SpamAssassinYes").read_bytes())
    assert spam.spam is True
    # msg_47: header and body run together (CPython missing-separator case)
    m47 = scan((MIME_EDGE / "cpython-test_email/msg_47.txt").read_bytes())
    assert len(m47.dedup_key) == 32
    # cpython msg_01: a plain message with a known Message-ID and subject
    m01 = scan((MIME_EDGE / "cpython-test_email/msg_01.txt").read_bytes())
    assert m01.message_id == "15090.61304.110929.45684@aaa.zzz.org"
    assert m01.subject == "This is a test message"


def test_mime_edge_torture_deadlines():
    _need(MIME_EDGE)
    for name in ("mimekit/messages/stack-overflow.txt", "mailgun-flanker/long-header.eml",
                 "thunderbird-mailnews/local-test-data/mailformed_subject.eml"):
        path = MIME_EDGE / name
        _need(path)  # a missing file fails under CI=true instead of silently testing nothing
        m = scan(path.read_bytes())
        assert not any(d.startswith("parse-error") for d in m.defects), (name, m.defects)
        assert len(m.dedup_key) == 32 and len(m.body_hash) == 32, name


def _fields(m) -> tuple:
    return m.message_id, m.subject, m.from_addr, m.to, m.cc, m.sent_date


def test_header_fields_equal_scan_on_all_corpora():
    """verify --full's F04 derives the catalog's fields with header_fields: on every corpus mail they are
    exactly scan's (the import's), and every Date the fast path reads is parsedate_to_datetime's."""
    _need(MIME_EDGE)
    _need(REAL)
    dates = 0
    for path in _files(MIME_EDGE) + _files(REAL):
        raw = path.read_bytes()
        assert _fields(header_fields(raw)) == _fields(_scan(path)), path
        for line in _block(path).split(b"\n"):
            if line[:5].lower() == b"date:":
                value = line[5:].strip().decode("ascii", "surrogateescape")
                try:
                    want = parsedate_to_datetime(value)
                except Exception as exc:  # noqa: BLE001 - the fast path must raise alike
                    with pytest.raises(type(exc)):
                        _date_value(value)
                else:
                    got = _date_value(value)
                    assert (got, got.tzinfo) == (want, want.tzinfo), value
                    dates += 1
    assert dates > 3000


@functools.lru_cache(maxsize=None)
def _compat32_fields(block: bytes) -> list[tuple[str, str]]:
    msg = BytesHeaderParser(policy=compat32).parsebytes(block)
    return [(n.lower(), v) for n, v in msg.raw_items() if n.lower() in _WANTED]


def test_fast_field_split_equals_compat32_on_all_corpora():
    """The fast header splitter must give exactly what compat32 gives, or defer to it."""
    _need(MIME_EDGE)
    _need(REAL)
    checked = deferred = 0
    for path in _files(MIME_EDGE) + _files(REAL):
        block = _block(path)
        if not block:
            continue
        fast = _wanted_fields(block)
        if fast is None:
            deferred += 1
            continue
        checked += 1
        assert fast == _compat32_fields(block), path
    assert checked > 5000
    assert deferred < checked / 10


def test_fast_address_parser_equals_getaddresses_on_all_corpora():
    _need(MIME_EDGE)
    _need(REAL)
    used = 0
    for path in _files(MIME_EDGE) + _files(REAL):
        block = _block(path)
        for name, value in _compat32_fields(block) if block else []:
            if name not in ("from", "to", "cc", "bcc"):
                continue
            value = _text(_unfold(value))
            fast = _fast_addresses(value)
            if fast is not None:
                used += 1
                assert fast == [(n, a.lower()) for n, a in getaddresses([value]) if a], (path, value)
    assert used > 10_000


def _index_rows() -> list[dict[str, str]]:
    with REAL_INDEX.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_real_corpus_matches_index():
    """Message-ID and subject of every indexed message agree with index.tsv.

    The index holds raw header values with line breaks replaced by spaces, so
    subjects are compared RFC 2047-decoded (by the stdlib) and whitespace-collapsed.
    """
    _need(REAL_INDEX)
    rows = _index_rows()
    assert len(rows) > 5000
    mid_bad, subj_bad, keys, defects = [], [], Counter(), Counter()
    pairs: list[tuple[tuple[str, bytes], bytes]] = []
    for row in rows:
        m = _scan(REAL / row["file"])
        keys[m.dedup_key] += 1
        if m.message_id:
            pairs.append(((m.message_id, m.body_hash), m.dedup_key))
        defects.update(m.defects)
        mid = row["message_id"].strip()
        expected_mid = mid[1:-1] if mid.startswith("<") and mid.endswith(">") else mid
        if (m.message_id or "") != expected_mid:
            mid_bad.append((row["file"], mid, m.message_id))
        try:
            expected_subject = str(make_header(decode_header(row["subject"])))
        except Exception:
            expected_subject = row["subject"]
        if _collapse(m.subject) != _collapse(expected_subject):
            subj_bad.append((row["file"], expected_subject, m.subject))
        assert m.sent_date is not None or row["date"] == "", row["file"]
    assert mid_bad == [], mid_bad[:10]
    assert subj_bad == [], subj_bad[:10]
    assert not any(d.startswith("parse-error") for d in defects), defects
    # every message gets a 32-byte key; the same Message-ID and normalised body give the same
    # key, and different (Message-ID, body) pairs never share one
    assert all(len(k) == 32 for k in keys)
    key_of: dict[tuple[str, bytes], set[bytes]] = {}
    for pair, k in pairs:
        key_of.setdefault(pair, set()).add(k)
    assert all(len(ks) == 1 for ks in key_of.values()), "one (Message-ID, body) pair, several keys"
    assert len({next(iter(ks)) for ks in key_of.values()}) == len(key_of), "two pairs share a key"
    assert len(key_of) > 5000


def test_real_corpus_every_file_scans():
    _need(REAL)
    files = _files(REAL)
    assert len(files) > 5000
    for path in files:
        m = _scan(path)
        assert len(m.dedup_key) == 32, path
        assert m.from_addr, path
