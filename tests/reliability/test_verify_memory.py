"""``verify --full``'s parent at a million mails (docs/reliability.md K8): what it holds while the workers read.

- A pack read ahead of the catalog (verify/ahead.py) comes back with its entries as one digest, not a tuple per
  record: the results that wait while the parent reads the catalog no longer grow by ~200 bytes a mail.
- Where the early workers read the packs, the quick checks and the stamp batches' run before the parent holds the
  packs' entries and keys, so that DuckDB's memory for their queries and a batch's items do not come on top of them.
- The entries and keys are read under a DuckDB memory limit (its cache of the blocks read was ~130 MB at a million),
  put back afterwards; a part the limit refuses is read again without it, with the same findings.
"""
from __future__ import annotations

import gc
import pickle
from pathlib import Path

import pytest

from importers.mbox import MboxImporter
from tests.integration.verify_support import build_archive, clone, run_verify
from toolkit.archive import Archive
from toolkit.catalog import check_session
from toolkit.ingest import Ingest
from verify import checks, deep
from verify.ahead import check_ahead, listed_packs, rows_digest

MAILS = 3000


def _view(report) -> list:
    return [(c.id, c.status, c.count, c.note, c.items) for c in report.checks]


@pytest.fixture(scope="module")
def big_pack(tmp_path_factory) -> Path:
    """An archive of one pack of :data:`MAILS` tiny mails (an mbox, imported in this process)."""
    root = tmp_path_factory.mktemp("one-pack")
    mbox = root / "tiny.mbox"
    with open(mbox, "wb") as f:
        for i in range(MAILS):
            f.write((f"From tiny@example.com Mon Jan  7 09:15:00 2019\nFrom: t{i % 97}@example.com\n"
                     f"To: archive@example.com\nSubject: tiny {i}\nDate: Mon, 7 Jan 2019 09:{(i // 60) % 60:02d}:"
                     f"{i % 60:02d} +0000\nMessage-ID: <tiny-{i}@example.com>\n\nline {i}\n\n").encode())
    archive = Archive.create(root / "home", str(root / "medium"), name="one-pack")
    try:
        Ingest(archive, pack_target=64 << 20, workers=0).run(MboxImporter(str(mbox)))
    finally:
        archive.close()
    return root / "home"


def test_a_pack_read_ahead_holds_its_entries_as_one_digest(big_pack):
    """What a check ahead's result weighs beyond its mails' keys does not grow with the pack's records (its entries
    as (offset, blob id, length, size, csize) tuples were ~200 bytes a record, pickled ~100)."""
    ((medium, name, _size),) = listed_packs(big_pack, 0)
    with Archive.open(big_pack) as archive:
        got = check_ahead(archive, medium, name, deep.SCAN_CAP)
    assert got is not None and len(got["keys"]) == MAILS
    beyond_keys = len(pickle.dumps(got)) - len(pickle.dumps(got["keys"]))
    assert beyond_keys < 1024, beyond_keys
    # and it is still proven against the catalog, or not: see tests/integration/test_verify_ahead.py
    with Archive.open(big_pack) as archive:
        with check_session(archive.catalog) as con:
            (task,) = deep._tasks(con)
        taken = deep.adopt(got, task)
        assert taken is not None and taken == deep.check_pack(archive, task)
    # the digest from the parent's columns is the one of the rows as tuples, and of the footer's entries
    assert task["rows"].entries_digest() == rows_digest(list(task["rows"])) == got["entries"]
    edited = list(task["rows"])
    edited[7] = edited[7][:4] + (edited[7][4] + 1,) + edited[7][5:]
    assert rows_digest(edited) != got["entries"]
    edited[7] = edited[7][:2] + (edited[7][2].upper(),) + edited[7][3:]
    assert rows_digest(edited) is None


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify-memory")
    build_archive(root, None, stamp=False, pack_target=3000)
    return root


@pytest.fixture
def home(base, tmp_path) -> Path:
    return clone(base, tmp_path / "copy")


def _spied(monkeypatch) -> list:
    """Record, in order, the quick checks' start (with the packs' entries alive then) and the reads of the entries
    and keys (with DuckDB's memory limit in force then)."""
    seen = []
    run_quick, tasks, keys, batches = checks.run_quick, deep._tasks, deep._catalog_keys, deep._check_batches

    def entries_alive() -> int:
        gc.collect()
        return sum(isinstance(o, deep._Entries) for o in gc.get_objects())

    def quick(*a, **kw):
        seen.append(("quick", entries_alive()))
        return run_quick(*a, **kw)

    def spy_batches(*a, **kw):
        seen.append(("batches", entries_alive()))
        return batches(*a, **kw)

    def limit(con) -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    def spy_tasks(con):
        seen.append(("tasks", limit(con)))
        return tasks(con)

    def spy_keys(con, packs=None):
        seen.append(("keys", limit(con)))
        return keys(con, packs)

    monkeypatch.setattr(checks, "run_quick", quick)
    monkeypatch.setattr(deep, "_check_batches", spy_batches)
    monkeypatch.setattr(deep, "_tasks", spy_tasks)
    monkeypatch.setattr(deep, "_catalog_keys", spy_keys)
    return seen


def test_with_early_workers_the_quick_checks_run_before_the_entries_are_held(home, monkeypatch):
    """The early workers read the packs meanwhile: the quick checks and the stamp batches' run first, while no pack's
    entries are held, and the entries and keys are then read under READ_MEMORY_LIMIT (old code: after both, DuckDB's
    default)."""
    want = _view(run_verify(home, workers=1))
    seen = _spied(monkeypatch)
    with deep.EarlyWorkers(home, None, 2, ahead_min_bytes=0) as early:
        got = run_verify(home, pool_min_bytes=0, early=early)
    assert _view(got) == want
    assert [s[0] for s in seen] == ["quick", "batches", "tasks", "keys"]
    assert seen[0][1] == seen[1][1] == 0  # the quick and the stamp batches' checks hold no pack's entries
    limited = f"{deep.READ_MEMORY_LIMIT / (1 << 20):.1f} MiB"
    assert seen[2][1] == seen[3][1] == limited
    with Archive.open(home) as archive:  # put back: the next session has DuckDB's default again
        with check_session(archive.catalog) as con:
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] != limited


def test_a_run_with_one_worker_runs_the_quick_checks_first_too(home, monkeypatch):
    seen = _spied(monkeypatch)
    report = run_verify(home, workers=1)
    assert [s[0] for s in seen] == ["quick", "batches", "tasks", "keys"] and seen[0][1] == seen[1][1] == 0
    assert report.exit_code == 0


def test_a_read_the_memory_limit_refuses_is_made_again_without_it(home, monkeypatch):
    """A limit too small for any read: the entries and keys are read again without it, in the same session, and the
    report is the one of a run without the limit (a finding included)."""
    from tests.integration.verify_support import messages, sql

    victim = messages(home)[sorted(messages(home))[2]]
    sql(home, "UPDATE messages SET subject = 'edited' WHERE msg_id = ?", [victim["msg_id"]])
    want = _view(run_verify(home, workers=1))
    assert any(c[0] == "F04" and c[1] == "finding" for c in want)
    refused = []
    real = deep._Entries.__init__

    def small(self, con, slices):
        if not refused:  # the first read runs out of memory as DuckDB would under a limit too small for it
            refused.append(1)
            import duckdb

            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return real(self, con, slices)

    monkeypatch.setattr(deep._Entries, "__init__", small)
    with deep.EarlyWorkers(home, None, 2, ahead_min_bytes=0) as early:
        assert _view(run_verify(home, pool_min_bytes=0, early=early)) == want
    assert refused == [1]


def test_a_session_under_a_limit_writes_no_temp_file_and_puts_its_settings_back(home):
    """The reader's limit spills nothing (a writer's import spills beside the catalog; a reader must not share that
    directory): its temp directory is off while it runs and as it was afterwards; a query beyond it fails as
    DuckDB's out-of-memory error, which within_limit takes back."""
    import duckdb

    with Archive.open(home) as archive:
        with check_session(archive.catalog) as con:
            before = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
        with check_session(archive.catalog, 1 << 20) as con:
            assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == ""
            big = "SELECT count(DISTINCT x) FROM (SELECT range::VARCHAR || 'x' AS x FROM range(500000))"
            with pytest.raises(duckdb.OutOfMemoryException):
                con.execute(big).fetchone()
            assert con.within_limit(lambda c: c.execute(big).fetchone()[0]) == 500_000
        with check_session(archive.catalog) as con:
            after = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    # put back by value, as DuckDB shows it (rounded: toolkit/catalog/connection.py)
    assert after[1] == before[1] and after[0].endswith("GiB") and abs(float(after[0][:-4]) - float(before[0][:-4])) < 0.15
    assert archive.catalog.temp_directory is None and not (home / "catalog.duckdb.tmp").exists()


def test_a_limited_session_on_a_connection_that_has_spilled_keeps_its_temp_directory(home):
    """A process whose catalog connection already spilled (an import under its own limit, then a verify in the same
    process, as `demo` does): DuckDB refuses to switch a used temp directory, so the limited session keeps it and
    still reads under its limit."""
    with Archive.open(home) as archive:
        archive.catalog.use_memory_limit(48 << 20)
        with archive.catalog.reading() as con:  # spill into the catalog's temp directory
            con.execute("SET threads = 1")
            con.execute("SELECT count(*), max(x) FROM (SELECT range::VARCHAR || 'xxxxxxxxxxxxxxxxxxxxxxxxxxxx' AS x "
                        "FROM range(3000000) ORDER BY x DESC)").fetchone()
        archive.catalog.use_memory_limit(None)
        with check_session(archive.catalog, deep.READ_MEMORY_LIMIT) as con:
            assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(
                archive.catalog.temp_directory)
            assert con.within_limit(deep._tasks)
        assert run_verify(home, workers=1).exit_code == 0
