"""MIME built to exhaust a parser (docs/reliability.md J6): 10,000 nested multiparts and 200,000 empty parts.

The toolkit never parses MIME bodies: the header scan reads the top header block only, and the
body is hashed and stored as bytes. So such a mail is archived byte for byte, with memory bounded
and no recursion; verify --full re-derives its header fields without trouble. The import runs in a
child process forked from a small launcher, whose own peak RSS
(from wait4) is compared with that of a child importing one small mail.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from tests.cli import PASSWORD, mailarchive
from tests.security.child_rusage import measured


def _deeply_nested(path: Path, depth: int = 10_000, parts: int = 200_000) -> bytes:
    head = [b"From: a@example.com\nTo: b@example.org\nSubject: nested\nMessage-ID: <j6@x>\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n"]
    for level in range(1, depth):
        head.append(b"--b%d\nContent-Type: multipart/mixed; boundary=\"b%d\"\n\n" % (level - 1, level))
    body = [b"--b%d\n\n" % (depth - 1)] * parts  # empty parts at the innermost level
    tail = [b"--b%d--\n" % level for level in range(depth - 1, -1, -1)]
    raw = b"".join(head + body + tail)
    path.write_bytes(raw)
    return raw


def _import_peak_rss(home: Path, source: Path) -> tuple[int, int]:
    """(exit status, own peak RSS in bytes) of `mailarchive import eml SOURCE`, forked from a small launcher
    (tests/security/child_rusage.py): a child forked from this test process would start as large as it."""
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD}
    env.pop("MAILARCHIVE_FAULT", None)
    m = measured([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)], env)
    return m.returncode, int(m.maxrss_mib * (1 << 20))


def test_j6_deep_nesting_and_many_parts_are_archived_raw_with_bounded_memory(tmp_path):
    small, hostile = tmp_path / "small", tmp_path / "hostile"
    small.mkdir()
    hostile.mkdir()
    (small / "1.eml").write_bytes(b"From: a@example.com\nSubject: small\nMessage-ID: <s@x>\n\nhi\n")
    raw = _deeply_nested(hostile / "nested.eml")
    assert raw.count(b"\n--b") > 200_000 and len(raw) > 1_000_000

    base_home, home = tmp_path / "base", tmp_path / "home"
    mailarchive(base_home, "init", "--medium", str(tmp_path / "mb"))
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    rc, baseline = _import_peak_rss(base_home, small)
    assert rc == 0
    rc, peak = _import_peak_rss(home, hostile)
    assert rc == 0
    # archived byte for byte: the blob id is the SHA-256 of the raw mail
    rows = json.loads(mailarchive(home, "sql", "SELECT blob_id, size, subject FROM messages", "--format", "json").stdout)
    assert len(rows) == 1
    assert rows[0]["blob_id"] == hashlib.sha256(raw).hexdigest() and rows[0]["subject"] == "nested"
    # memory: a few copies of a 2-3 MB mail at most, never a parse tree of 200,000 nodes
    assert peak - baseline < 64 << 20, (peak, baseline)
    v = mailarchive(home, "--json", "verify", "--full", check=None)
    assert json.loads(v.stdout)["totals"]["findings"] == 0
