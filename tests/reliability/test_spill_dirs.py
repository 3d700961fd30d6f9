"""Where DuckDB spills what a catalog session's memory limit does not hold (toolkit/catalog/spill_dirs.py).

DuckDB names its temp files alike in every process and removes those of its directory when it ends: two processes
spilling into one directory read each other's blocks (a wrong result or a failed read) and remove each other's
files. Only the writer, one at a time under the archive's lock, spills beside the catalog; every other process
spills into a directory of its own, outside the home (a reader writes nothing there).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.archive import Archive
from toolkit.catalog import spill_dirs

#: A sort that needs ~150 MB: under a 48 MB limit DuckDB spills it.
SPILLING = ("SELECT sum(i * rk) FROM (SELECT i, row_number() OVER (ORDER BY hash(i)) AS rk "
            "FROM range(3000000) t(i))")
LIMIT = 48 << 20


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spill")
    Archive.create(root / "home", str(root / "medium"), name="spill").close()
    return root / "home"


def _listing(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_a_reader_spills_into_a_directory_of_its_own_outside_the_home(home):
    before = _listing(home)
    with Archive.open(home) as archive:
        assert archive.catalog.temp_directory is None  # nothing made before a limit needs it
        archive.catalog.use_memory_limit(LIMIT)
        own = archive.catalog.temp_directory
        assert own is not None and own.is_dir() and not own.is_relative_to(home)
        assert own.name.startswith(f"{spill_dirs.PREFIX}{os.getpid()}-") and own.stat().st_mode & 0o077 == 0
        with archive.catalog.reading() as con:
            con.execute("SET threads = 1")
            assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(own)
            con.execute(SPILLING).fetchone()
            spilled = os.listdir(own)
        assert _listing(home) == before  # nothing in the home, not even an empty catalog.duckdb.tmp
    assert not own.exists()  # removed with the catalog
    assert any(name.startswith("duckdb_temp") for name in spilled), spilled  # (it did spill there)


def test_the_writer_spills_beside_the_catalog_and_removes_the_emptied_directory(home):
    with Archive.open(home, writer=True) as archive:
        archive.catalog.use_memory_limit(LIMIT)
        assert archive.catalog.temp_directory == home / "catalog.duckdb.tmp"
        with archive.catalog.reading() as con:
            con.execute("SET threads = 1")
            con.execute(SPILLING).fetchone()
            assert any(p.name.startswith("duckdb_temp") for p in (home / "catalog.duckdb.tmp").iterdir())
    assert not (home / "catalog.duckdb.tmp").exists()  # nothing left in the home after the session


_SPILL_IN_A_PROCESS = """
import sys
from toolkit.archive import Archive
with Archive.open(sys.argv[1]) as archive:
    archive.catalog.use_memory_limit(int(sys.argv[2]))
    with archive.catalog.reading() as con:
        con.execute("SET threads = 1")
        print(con.execute(sys.argv[3]).fetchone()[0], archive.catalog.temp_directory, flush=True)
"""


def test_two_readers_spilling_at_once_each_get_the_right_answer(home):
    """The hazard itself: in one shared directory about two rounds in five failed (a read cut short, or another
    process's block read as this one's data: an overflow error); with a directory each, every round is right."""
    want = None
    for _ in range(4):
        procs = [subprocess.Popen([sys.executable, "-c", _SPILL_IN_A_PROCESS, str(home), str(LIMIT), SPILLING],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-600:] for o in outs]
        results = [o[0].split() for o in outs]
        want = want or results[0][0]
        assert [r[0] for r in results] == [want, want]
        assert results[0][1] != results[1][1]
        assert not any(Path(r[1]).exists() for r in results)


def test_the_directories_of_dead_processes_are_removed_and_no_other(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / f"{spill_dirs.PREFIX}{dead_pid}-abc"
    (left / "x").mkdir(parents=True)
    mine = tmp_path / f"{spill_dirs.PREFIX}{os.getpid()}-def"
    mine.mkdir()
    other = [tmp_path / f"{spill_dirs.PREFIX}{dead_pid}", tmp_path / "unrelated-1-x"]
    for path in other:
        path.mkdir()
    assert spill_dirs.remove_dead(tmp_path) == [left]
    assert not left.exists() and mine.exists() and all(p.exists() for p in other)
