"""Commit groups (toolkit/ingest.py ``Ingest._due``, docs/dedup.md "Deciding ahead"): the decided tasks whose
packs are written are committed together, in one transaction, up to COMMIT_GROUP tasks or COMMIT_ROWS messages.
Here a written pack always waits for the next one (``COMMIT_HOLD`` raised), so the commits go in groups on every
run. Each pack a commit names is on the
medium whole before its rows are written; a kill -9 just before or just after a commit of two tasks leaves a
committed prefix of the source, and the rerun completes to exactly the catalog of a clean run, no mail lost
and none twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from tests.corpora import REPO
from tests.reliability.test_decide_ahead import PACK, _clean, _committed_prefix, _dump, _no_damage, _source
from toolkit import ingest
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.ingest_writer import IngestWriter


def _whole_on_medium(medium: Path, parts) -> None:
    for part in parts:
        for pack in part.packs:
            assert (medium / pack.name).stat().st_size == pack.bytes, pack.name


def test_commits_in_pairs_name_only_packs_already_on_the_medium(tmp_path, monkeypatch):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    monkeypatch.setattr(ingest, "COMMIT_HOLD", 3600.0)
    groups: list[list[int]] = []
    real = IngestWriter.commit_parts

    def commit_parts(self, parts, medium_id, summary):
        _whole_on_medium(tmp_path / "medium", parts)  # written and published before any row points into it
        bases = [p.base for p in parts]
        real(self, parts, medium_id, summary)
        assert [p.base for p in parts] == bases  # numbered as the driver decided them
        groups.append([len(p.rows.messages) for p in parts])

    monkeypatch.setattr(IngestWriter, "commit_parts", commit_parts)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        s = Ingest(archive, workers=2, pack_target=PACK).run(EmlImporter(str(src)))
        assert s.status == "complete"
        assert any(len(g) >= 2 for g in groups), groups
        assert len(groups) < sum(map(len, groups))  # fewer transactions than tasks
        assert _dump(archive) == clean
        assert _no_damage(archive) == []
    finally:
        archive.close()


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from importers.eml import EmlImporter
    from toolkit import ingest
    from toolkit.archive import Archive
    from toolkit.ingest_writer import IngestWriter

    home, medium, src, when, pack = sys.argv[1:6]
    ingest.COMMIT_HOLD = 3600.0
    real = IngestWriter.commit_parts

    def commit_parts(self, parts, medium_id, summary):
        grouped = sum(1 for p in parts if p.packs) >= 2
        if grouped:
            Path(home, "pair.txt").write_text("\\n".join(k.name for p in parts for k in p.packs))
        if grouped and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, parts, medium_id, summary)
        if grouped and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    IngestWriter.commit_parts = commit_parts
    archive = Archive.open(Path(home), writer=True)
    ingest.Ingest(archive, workers=2, pack_target=int(pack)).run(EmlImporter(src))
""")


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_9_at_a_commit_of_two_packs_then_the_rerun_completes_exactly(tmp_path, when):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    home, medium = tmp_path / "home", tmp_path / "medium"
    Archive.create(home, str(medium)).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(home), str(medium), str(src), when, str(PACK)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    archive = Archive.open(home, writer=True)
    try:
        with archive.catalog.reading() as con:
            archived = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert 0 < archived < len(clean["messages"]) if when == "after" else archived < len(clean["messages"])
        _committed_prefix(archive, src)
        with archive.catalog.reading() as con:
            committed = {r[0] for r in con.execute("SELECT name FROM packs").fetchall()}
        pair = set((home / "pair.txt").read_text().split())
        orphans = _no_damage(archive)  # packs written and never committed (the pair's, killed before) are listed
        assert len(pair) >= 2
        assert (pair <= set(orphans) and not pair & committed) if when == "before" else pair <= committed
        again = Ingest(archive, workers=2, pack_target=PACK).run(EmlImporter(str(src)))
        assert again.status == "complete"
        assert _dump(archive) == clean  # every mail once: none lost, none twice
        assert _no_damage(archive) == orphans
    finally:
        archive.close()
