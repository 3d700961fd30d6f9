"""A mail never hangs an import, and is never dropped.

The shape that hung real imports: a To: of comma-separated addresses ending in
``x@host."tld\\]"`` (a quoted string holding a backslash). It must import
through ``import share`` and ``import eml`` and come back byte-exact. A mail
whose parse runs past the per-mail limit (made slow through the named fault
point ``prepare_parse``) is archived all the same, byte-exact, with the defect
``parse-timeout`` and the fields a bounded line scan reads.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from toolkit import faults
from toolkit.archive import Archive
from toolkit.headers import fallback_scan, scan
from toolkit.ingest import Ingest
from toolkit.prepare import ParseTimeout, watchdog
from toolkit.retrieval import read_messages, select_messages
from tests.cli import mailarchive

pytestmark = pytest.mark.security


def point6_to(length: int) -> str:
    """Addresses joined by ", " up to about ``length`` characters, ending in the quoted-backslash domain."""
    tail = 'x@host."tld\\]"'
    parts, size, i = [], len(tail), 0
    while size < length:
        a = f"user{i}@example{i % 7}.com"
        parts.append(a)
        size += len(a) + 2
        i += 1
    return ", ".join([*parts, tail])


def point6_mail(length: int, n: int = 0) -> bytes:
    return (f"From: Spammer <spam{n}@example.net>\r\nTo: {point6_to(length)}\r\n"
            f"Subject: point 6 mail {n}\r\nDate: Tue, 5 Mar 2024 10:00:00 +0100\r\n"
            f"Message-ID: <point6-{n}@example.net>\r\n\r\nbuy now\r\n").encode()


def _exported(dest: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in dest.rglob("*.eml"))


def test_the_old_address_regex_is_stopped_by_the_watchdog():
    """The re engine checks for signals while it backtracks: the SIGALRM watchdog stops even the old
    catastrophic address pattern on a 240-character To: (it would otherwise run for hours)."""
    old = re.compile(r'(?:[^,"]+|"[^"\\\r\n]*"|,)*')
    to = point6_to(240)
    assert 230 <= len(to) <= 260
    t = time.monotonic()
    with pytest.raises(ParseTimeout):
        with watchdog(0.3):
            old.fullmatch(to)
    # stopped by the 0.3 s alarm, not after the hours the match would take: a margin no load reaches
    assert time.monotonic() - t < 60


@pytest.mark.parametrize("length", [240, 13_600])
def test_point6_shape_scans_quickly(length):
    """No wall-clock figure here: the scan ends within its own parse deadline (no ``parse-timeout``
    defect), and a watchdog 30 times that deadline turns a backtracking hang into a failure. That the
    address patterns stay linear on this shape is checked by tests/security/test_regex_linear.py."""
    raw = point6_mail(length)
    with watchdog(60):
        meta = scan(raw)
    assert "parse-timeout" not in meta.defects
    assert meta.message_id == "point6-0@example.net" and meta.from_addr == "spam0@example.net"
    assert "user0@example0.com" in meta.to


@pytest.mark.parametrize("command", ["share", "eml"])
def test_point6_mails_import_and_export_byte_exact(tmp_path, command):
    home, src, dest = tmp_path / "home", tmp_path / "src", tmp_path / "out"
    src.mkdir()
    mails = [point6_mail(240, 1), point6_mail(13_600, 2)]
    for i, raw in enumerate(mails):
        (src / f"m{i}.eml").write_bytes(raw)
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    p = mailarchive(home, "--json", "import", command, str(src), json_out=True, timeout=120)
    assert p.result["archived"] == 2, p.result
    mailarchive(home, "export", "eml", str(dest))
    assert _exported(dest) == sorted(mails)


def _slow_mails(src: Path) -> list[bytes]:
    src.mkdir()
    mails = []
    for i in range(3):
        raw = (f"From: Sender {i} <s{i}@example.com>\nTo: r@example.org\nSubject: slow {i}\n"
               f"Date: Mon, 1 Mar 2021 10:00:0{i} +0000\nMessage-ID: <slow-{i}@example.com>\n\nbody {i}\n").encode()
        (src / f"{i}.eml").write_bytes(raw)
        mails.append(raw)
    return mails


def test_slow_parse_is_archived_with_parse_timeout_inline_and_in_workers(tmp_path, monkeypatch):
    """chunk=1, one worker: the first mail is prepared inline in the driver, the others in a worker
    process; every parse sleeps 60 s at the fault point, the limit is 0.5 s."""
    mails = _slow_mails(tmp_path / "src")
    monkeypatch.setitem(faults.ACTIVE, "slow", "prepare_parse:60")  # what the CLI sets from MAILARCHIVE_FAULT_SLOW
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        t = time.monotonic()
        s = Ingest(a, chunk=1, workers=1, parse_limit=0.5).run(EmlImporter(str(tmp_path / "src")))
        assert time.monotonic() - t < 50
        assert s.archived == 3 and s.errors == 0 and s.status == "complete"
        sel = select_messages(a)
        with a.catalog.reading() as con:
            rows = con.execute("SELECT message_id, from_addr, subject, defects, sent_date FROM messages "
                               "ORDER BY message_id").fetchall()
        assert [r[0] for r in rows] == [f"slow-{i}@example.com" for i in range(3)]
        for i, (mid, sender, subject, defects, sent) in enumerate(rows):
            assert "parse-timeout" in defects.split(",")
            assert sender == f"s{i}@example.com" and subject == f"slow {i}" and sent is not None
        assert sorted(data for _, data in read_messages(a, sel)) == sorted(mails)
    finally:
        a.close()


def test_slow_parse_through_the_cli_exports_byte_exact(tmp_path):
    home, dest = tmp_path / "home", tmp_path / "out"
    mails = _slow_mails(tmp_path / "src")
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    env = {"MAILARCHIVE_FAULT_SLOW": "prepare_parse:60", "MAILARCHIVE_PARSE_LIMIT": "0.5"}
    p = mailarchive(home, "--json", "import", "eml", str(tmp_path / "src"), env=env, json_out=True, timeout=60)
    assert p.result["archived"] == 3
    rows = mailarchive(home, "sql", "SELECT defects FROM messages", "--format", "json").stdout
    assert rows.count("parse-timeout") == 3
    mailarchive(home, "export", "eml", str(dest))
    assert _exported(dest) == sorted(mails)


def test_fallback_reads_the_same_key_as_the_scan():
    raw = (b"Message-ID: <k@x>\r\nFrom: \"A, B\" <A@Example.com>\r\nSubject: hello\r\n\tworld\r\n"
           b"Date: Mon, 1 Mar 2021 10:00:00 +0000\r\n\r\nbody  \r\n\r\n")
    full, fb = scan(raw), fallback_scan(raw)
    assert fb.defects[0] == "parse-timeout"
    assert (fb.message_id, fb.from_addr, fb.dedup_key, fb.body_hash, fb.sent_date) == (
        full.message_id, full.from_addr, full.dedup_key, full.body_hash, full.sent_date)
    no_mid = raw.replace(b"Message-ID: <k@x>\r\n", b"")
    assert fallback_scan(no_mid).dedup_key == scan(no_mid).dedup_key
