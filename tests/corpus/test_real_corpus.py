"""All 5,429 real list messages import; the one duplicated Message-ID comes out as one duplicate."""
from __future__ import annotations

import hashlib

from importers.eml import EmlImporter
from tests.corpora import corpora_dir
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.retrieval import read_messages, select_messages


def test_all_real_messages_import(tmp_path):
    src = corpora_dir() / "e-real-corpus" / "linux-watchdog-2022-2023"
    files = sorted(p for p in src.iterdir() if p.is_file())
    assert len(files) == 5429
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = Ingest(a).run(EmlImporter(str(src)))
        assert (s.seen, s.errors, s.skipped) == (5429, 0, 0)
        # 01011 and 01012 share a Message-ID and a body; only transport headers differ
        assert s.decisions == {"new": 5428, "duplicate": 1}
        with a.catalog.reading() as con:
            dup = con.execute(
                "SELECT s.source_ref, m.message_id FROM sightings s JOIN messages m USING (msg_id) WHERE s.decision = 'duplicate'"
            ).fetchall()
            refs = dict(con.execute(
                "SELECT s.source_ref, m.blob_id FROM sightings s JOIN messages m USING (msg_id) WHERE s.decision = 'new'"
            ).fetchall())
        assert dup == [("01012-51681367da37.eml", "b8d280ed-b04f-e69c-8a0f-81ccaf43b895@roeck-us.net")]
        # every other file is archived byte for byte
        for f in files:
            if f.name in refs:
                assert hashlib.sha256(f.read_bytes()).hexdigest() == refs[f.name]
        sel = select_messages(a)
        assert len(sel) == 5428
        assert all(hashlib.sha256(d).hexdigest() == m.blob_id for m, d in read_messages(a, sel))
        again = Ingest(a).run(EmlImporter(str(src)))
        assert again.archived == 0 and again.duplicates == 5429
    finally:
        a.close()
