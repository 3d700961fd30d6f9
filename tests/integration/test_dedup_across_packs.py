"""Dedup holds across pack boundaries and worker chunks of one run (a regression test).

A mail that repeats one committed in an earlier pack of the same run must be
recorded as a duplicate, never stored twice, with and without worker processes.
"""
from __future__ import annotations

import random

import pytest

from importers.eml import EmlImporter
from toolkit.archive import Archive
from toolkit.ingest import Ingest, KnownKeys


def _source(root, n=600):
    rng = random.Random(7)
    root.mkdir()
    bodies = []
    for i in range(n):
        if i >= 50 and i % 10 == 0:  # exact copies of mails far earlier (other packs)
            raw = bodies[rng.randrange(0, i - 40)]
        elif i >= 50 and i % 10 == 5:  # same mail, other transport header
            raw = b"Received: by relay.example.org\n" + bodies[rng.randrange(0, i - 40)]
        else:
            text = "".join(rng.choice("abcdefgh \n") for _ in range(rng.randint(3000, 9000)))
            raw = f"From: a@example.com\nSubject: m{i}\nMessage-ID: <m{i}@example.com>\n\n{text}".encode()
        bodies.append(raw)
        (root / f"{i:04d}.eml").write_bytes(raw)
    return len({b for b in bodies if not b.startswith(b"Received")})


@pytest.mark.parametrize("workers, run_keys_limit", [(0, None), (2, None), (0, 20)])
def test_duplicates_across_packs_are_not_stored_twice(tmp_path, monkeypatch, workers, run_keys_limit):
    """With the run's keys in memory, and spilled to prefixes (limit 20: the catalog answers)."""
    if run_keys_limit is not None:
        monkeypatch.setattr(KnownKeys, "RUN_KEYS_LIMIT", run_keys_limit)
    distinct = _source(tmp_path / "src")
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = Ingest(a, workers=workers, pack_target=200_000, chunk=32).run(EmlImporter(str(tmp_path / "src")))
        assert s.packs >= 5
        with a.catalog.reading() as con:
            rows, blobs, keys = con.execute(
                "SELECT count(*), count(DISTINCT blob_id), count(DISTINCT dedup_key) FROM messages"
            ).fetchone()
            packs = con.execute("SELECT count(*), sum(records) FROM packs").fetchone()
            names = {r[0] for r in con.execute("SELECT name FROM packs").fetchall()}
        assert rows == blobs == keys == distinct == s.archived
        assert s.decisions.get("exact-duplicate", 0) + s.decisions.get("duplicate", 0) == 110
        assert s.decisions.get("exact-duplicate", 0) >= 50 and s.decisions.get("duplicate", 0) >= 50
        # a pack task seals every distinct mail it reads; a committed pack holds only the records the
        # catalog references (the driver moves them out of a task pack that also holds duplicates)
        assert packs == (s.packs, rows)
        on_medium = {f.relative_to(tmp_path / "m1").as_posix() for f in (tmp_path / "m1").glob("packs/*/*.pack")}
        assert on_medium == names, "a task pack left on the medium after its records moved"
        again = Ingest(a, workers=workers, pack_target=200_000, chunk=32).run(EmlImporter(str(tmp_path / "src")))
        assert again.archived == 0
    finally:
        a.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_tiny_packs_keep_every_mail_byte_exact(tmp_path, workers):
    """Tiny mails and tiny packs: each pack task seals and writes its own mails and hands back only
    their index rows (no plaintext goes back to the driver). Every mail must come back byte-exact."""
    from toolkit.retrieval import read_messages, select_messages

    src = tmp_path / "src"
    src.mkdir()
    want = {}
    for i in range(48):
        raw = f"Subject: {i}\n\nbody {i}\n".encode()          # ~20 bytes: a sealed record is ~3x that
        (src / f"{i:03d}.eml").write_bytes(raw)
        want[raw] = i
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    try:
        s = Ingest(a, workers=workers, pack_target=200, chunk=4).run(EmlImporter(str(src)))
        assert s.archived == 48 and s.errors == 0
        got = [data for _, data in read_messages(a, select_messages(a))]
    finally:
        a.close()
    assert all(isinstance(d, bytes) for d in got)
    assert sorted(want[d] for d in got) == list(range(48))
    assert s.packs >= 10
