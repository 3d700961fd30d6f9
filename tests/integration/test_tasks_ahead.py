"""A run takes up the task the start-up sent ahead (toolkit/early_tasks.py, toolkit/ingest.py ``_take_up_ahead``) only
when its own first chunk holds the same jobs: then that task's pack is the run's first; otherwise the task keeps
nothing and writes nothing, and the run imports exactly what a run without it imports (real worker processes)."""
from __future__ import annotations

from pathlib import Path

import pytest

from importers.eml import EmlImporter
from tests.reliability.test_decide_ahead import _clean, _dump, _no_damage, _source
from toolkit import early_tasks, faults
from toolkit.archive import Archive
from toolkit.executors import StartedPool
from toolkit.ingest import Ingest
from toolkit.pack import pack_name
from toolkit.reporter import NullReporter

PACK = 12 * 1024  # about four mails a task (tests/reliability/test_decide_ahead.py PACK)


def _pool(items, pack_target: int = PACK) -> StartedPool:
    pool = StartedPool(2, dict(faults.ACTIVE))  # (as the start-up spawns it: the run takes it only so)
    early_tasks.start(pool.executor, items, None, pack_target, pool.ahead)
    assert len(pool.ahead) == 1
    return pool


def _run(tmp_path: Path, src: Path, pool: StartedPool, name: str) -> tuple[dict, set[str], list[Path]]:
    archive = Archive.create(tmp_path / f"{name}-home", str(tmp_path / f"{name}-medium"))
    try:
        s = Ingest(archive, workers=2, pack_target=PACK, started=pool).run(EmlImporter(str(src)))
        assert s.status == "complete"
        with archive.catalog.reading() as con:
            packs = {r[0] for r in con.execute("SELECT name FROM packs").fetchall()}
        assert _no_damage(archive) == []  # no pack that the catalog does not name: none left by the task ahead
        files = [p for p in (tmp_path / f"{name}-medium").rglob("*") if p.is_file()]
        return _dump(archive), packs, files
    finally:
        pool.abandon()
        archive.close()


def test_the_task_sent_ahead_is_taken_up_and_the_run_equals_a_clean_one(tmp_path):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    pool = _pool(EmlImporter(str(src)).scan(None, NullReporter()))
    ahead = pool.ahead[0]
    dump, packs, _files = _run(tmp_path, src, pool, "ahead")
    assert dump == clean
    assert pack_name(ahead.pack_id) in packs  # its pack, sealed with the key the answer brought


@pytest.mark.parametrize("why", ["other mails", "other limits"])
def test_a_task_sent_ahead_for_another_first_chunk_writes_nothing(tmp_path, why):
    src = _source(tmp_path / "src")
    clean = _clean(tmp_path, src)
    if why == "other mails":  # (as a run that resumes after its first mails: its first chunk starts later)
        items = iter(list(EmlImporter(str(src)).scan(None, NullReporter()))[2:])
        pool = _pool(items)
    else:
        pool = _pool(EmlImporter(str(src)).scan(None, NullReporter()), pack_target=PACK * 2)
    ahead = pool.ahead[0]
    dump, packs, files = _run(tmp_path, src, pool, "refused")
    assert dump == clean
    assert pack_name(ahead.pack_id) not in packs
    assert not any(ahead.pack_id.hex() in str(f) for f in files)  # not even a temporary file of it
