"""Large mails are streamed, never held whole (docs/reliability.md K1, K2).

The threshold is lowered so a 40 MB mail (3 segments of 16 MiB) takes the
streamed path; the result must equal the in-memory path exactly.
"""
from __future__ import annotations

import base64
import hashlib
import os

import importers.walk as walk_module
from importers.eml import EmlImporter
from toolkit.archive import Archive
from toolkit.headers import scan
from toolkit.ingest import Ingest
from toolkit.retrieval import read_messages, select_messages, stream_message


def _big_mail(path, mb: int) -> bytes:
    rng = os.urandom
    body = base64.encodebytes(rng(mb * 1024 * 1024 * 3 // 4)).replace(b"\n", b" \r\n")  # trailing spaces + CRLF
    raw = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\r\n" + body + b"\r\n\r\n"
    path.write_bytes(raw)
    return raw


def test_streamed_import_equals_in_memory(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    raw = _big_mail(src / "big.eml", 40)
    (src / "small.eml").write_bytes(b"Subject: small\nMessage-ID: <s@x>\n\nhello\n")
    monkeypatch.setattr(walk_module, "LARGE_MAIL", 1024 * 1024)
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = Ingest(a).run(EmlImporter(str(src)))
        assert s.archived == 2 and s.errors == 0
        with a.catalog.reading() as con:
            row = con.execute("SELECT blob_id, dedup_key, size, defects FROM messages WHERE subject = 'big'").fetchone()
        meta = scan(raw)
        assert row[0] == hashlib.sha256(raw).hexdigest()
        assert row[1] == meta.dedup_key.hex()  # the streamed body hash equals the one-shot one
        assert row[2] == len(raw) and "large-mail-streamed" in row[3]
        sel = select_messages(a, "m.subject = 'big'")
        assert hashlib.sha256(b"".join(stream_message(a, sel[0]))).digest() == hashlib.sha256(raw).digest()
        # the same mail through the in-memory path is recognised as the same bytes
        monkeypatch.setattr(walk_module, "LARGE_MAIL", 1 << 40)
        again = Ingest(a).run(EmlImporter(str(src)))
        assert again.archived == 0 and again.decisions == {"exact-duplicate": 2}
        assert [d for _, d in read_messages(a, sel)][0] == raw
    finally:
        a.close()
