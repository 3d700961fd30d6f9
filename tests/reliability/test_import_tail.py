"""The import's tail (toolkit/ingest.py ``_Chunks``, ``Ingest._commit_all``; docs/architecture.md "The import's
tail"): with a pool, the source's rest is cut into tasks that shrink once its end is in sight, and the last packs
are committed in one transaction while the idle workers exit. Only where the records lie changes: the catalog's
rows are exactly those of a serial run (no pool: no tail cut); a kill -9 just before the run's last commit leaves a
committed prefix that the rerun completes to exactly that catalog, no mail lost and none twice, and one just after
it leaves that catalog already.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from importers.eml import EmlImporter
from tests.corpora import REPO
from tests.reliability.test_decide_ahead import PACK, _clean, _committed_prefix, _dump, _no_damage, _source
from toolkit.archive import Archive
from toolkit.ingest import TAPER_LEAST, Ingest
from toolkit.source import SourceMail


class Recording(Ingest):
    """The driver, recording the bytes of mail in each task it sends to the workers, in order (``inline``: of the
    first chunk, which it runs itself)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.tasks: list[int] = []
        self.inline = 0

    def _submit(self, chunk, inline=False):
        size = sum(i.length for i in chunk if isinstance(i, SourceMail))
        if inline or self._executor is None:
            self.inline += size
        else:
            self.tasks.append(size)
        return super()._submit(chunk, inline)


def _run(tmp_path, name: str, src, workers: int, pack: int) -> tuple[dict, Recording, int]:
    archive = Archive.create(tmp_path / f"{name}-home", str(tmp_path / f"{name}-medium"))
    try:
        ing = Recording(archive, workers=workers, pack_target=pack)
        s = ing.run(EmlImporter(str(src)))
        assert s.status == "complete"
        with archive.catalog.reading() as con:
            packs = con.execute("SELECT count(*) FROM packs").fetchone()[0]
        assert _no_damage(archive) == []
        return _dump(archive), ing, packs
    finally:
        archive.close()


def test_the_last_tasks_shrink_and_the_rows_are_those_of_a_serial_run(tmp_path):
    src = _source(tmp_path / "src")
    total = sum(p.stat().st_size for p in src.iterdir())
    pack = total // 3  # an inline first chunk, a full one, and the rest
    serial, one, serial_packs = _run(tmp_path, "serial", src, 0, pack)  # no pool: one chunk after another
    pooled, run, packs = _run(tmp_path, "pool", src, 2, pack)
    assert pooled == serial  # the same decisions, messages, sightings, cursors
    assert one.inline == run.inline + sum(run.tasks) == total
    # after the inline first chunk the source's end was in sight: the rest, two chunks without a pool, is the
    # tail: four tasks, each about half of what was left (to a mail) or the small rest, the last one small
    tail = run.tasks
    assert len(tail) >= 4 and packs > serial_packs
    rest = total - run.inline
    for size in tail:
        assert size <= max(rest / 2, 1.5 * pack / TAPER_LEAST) + 4_000
        rest -= size
    assert tail[-1] < tail[0] / 4


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from importers.eml import EmlImporter
    from toolkit import ingest
    from toolkit.archive import Archive
    from toolkit.ingest_writer import IngestWriter

    home, medium, src, when, pack = sys.argv[1:6]
    real = IngestWriter.commit_parts

    def commit_parts(self, parts, medium_id, summary):
        last = any(isinstance(p.rows.cursor, dict) and p.rows.cursor.get("complete") is True for p in parts)
        if last:
            Path(home, "last.txt").write_text("\\n".join(k.name for p in parts for k in p.packs))
        if last and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, parts, medium_id, summary)
        if last and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    IngestWriter.commit_parts = commit_parts
    archive = Archive.open(Path(home), writer=True)
    ingest.Ingest(archive, workers=2, pack_target=int(pack)).run(EmlImporter(src))
""")


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_9_at_the_last_commit_then_the_rerun_completes_exactly(tmp_path, when):
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
            committed = {r[0] for r in con.execute("SELECT name FROM packs").fetchall()}
        last = set((home / "last.txt").read_text().split())  # the packs of the last tasks (none if all duplicates)
        if when == "before":
            assert 0 < archived <= len(clean["messages"]) and not last & committed
        else:
            assert archived == len(clean["messages"]) and last <= committed
        _committed_prefix(archive, src)
        orphans = _no_damage(archive)  # the last packs, written and never committed, are listed (killed before)
        if when == "after":  # the last commit made the catalog whole: that of a clean run, nothing left over
            assert orphans == [] and _dump(archive) == clean
            return
        assert last <= set(orphans)
        again = Ingest(archive, workers=2, pack_target=PACK).run(EmlImporter(str(src)))
        assert again.status == "complete"
        assert _dump(archive) == clean  # every mail once: none lost, none twice
        assert _no_damage(archive) == orphans
    finally:
        archive.close()
