"""docs/reliability.md A6: a writer killed while DuckDB rewrites a metadata block of the catalog in place.

DuckDB writes each checkpoint's metadata blocks (256 KiB) over the old ones; a process killed during that
``pwrite`` leaves a torn block, and without the checkpoint guard the catalog no longer opens (the CI run
of 2026-12-05 met it: a migration killed at its first pack). The torn write is made exactly here: a small
preloaded library (tests/native/torn_write.c) lets the import's Nth large write to ``catalog.duckdb``
write half its bytes and then kills the process with SIGKILL.

For torn metadata writes early, midway and late in a real import: the file without its guard is damaged
(the tear is real), a reader refuses with the clear message and changes nothing, and the import run again
repairs the catalog from the guard and ends with exactly the mails of a clean run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive, run_cli
from toolkit.catalog.checkpoint_guard import BLOCKS_START

N_MAILS = 120
NATIVE = Path(__file__).resolve().parent.parent / "native" / "torn_write.c"


@pytest.fixture(scope="module")
def torn_write_lib(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "torn_write.so"
    p = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(NATIVE), "-ldl"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr  # scripts/setup installs gcc (it builds the toolkit's C helpers too)
    return out


def _source(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(N_MAILS):
        (root / f"{i:03d}.eml").write_text(
            f"From: t{i}@example.com\nTo: r@example.org\nSubject: torn write {i}\nMessage-ID: <tear-{i}@x>\n\n"
            + f"line {i} of a body long enough to fill packs\n" * 60)
    return root


def _import(home: Path, source: Path, **extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "8000",
           "MAILARCHIVE_WORKERS": "0", **extra}
    env.pop("MAILARCHIVE_FAULT", None)
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)]
    if "LD_PRELOAD" in extra:  # a process of its own: the test's fork server would not load the library
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    return run_cli(cmd, env=env, timeout=300)


def _blobs(home: Path) -> list[str]:
    out = mailarchive(home, "sql", "SELECT blob_id FROM messages", "--format", "json").stdout
    return sorted(r["blob_id"] for r in json.loads(out))


def _tear_env(lib: Path, at: int, log: Path | None = None) -> dict:
    env = {"LD_PRELOAD": str(lib), "TORN_WRITE_SUFFIX": "/catalog.duckdb", "TORN_WRITE_AT": str(at)}
    if log is not None:
        env["TORN_WRITE_LOG"] = str(log)
    return env


@pytest.fixture(scope="module")
def planned(torn_write_lib, tmp_path_factory):
    """A clean run's blob set, and the indexes of the import's in-place writes of metadata block 0."""
    root = tmp_path_factory.mktemp("tear")
    source = _source(root / "src")
    home = root / "clean"
    mailarchive(home, "init", "--medium", str(root / "clean-medium"))
    log = root / "writes.log"
    p = _import(home, source, **_tear_env(torn_write_lib, 10**9, log))
    assert p.returncode == 0, p.stderr
    writes = [line.split() for line in log.read_text().splitlines()]
    in_place = [int(i) for i, _n, off in writes if int(off) == BLOCKS_START]
    assert len(in_place) >= 4, writes  # one per checkpoint: the import commits several times
    return root, source, _blobs(home), in_place


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_a6_a_torn_metadata_block_is_put_back_and_the_rerun_ends_with_every_mail(planned, torn_write_lib, tmp_path,
                                                                                  which):
    root, source, clean, in_place = planned
    at = {"first": in_place[1], "middle": in_place[len(in_place) // 2], "last": in_place[-2]}[which]
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"))
    p = _import(home, source, **_tear_env(torn_write_lib, at))
    assert p.returncode == -9, (p.returncode, p.stderr)  # killed inside the torn write
    assert (home / "catalog.duckdb.guard").exists()

    # the tear is real: without its guard the catalog no longer opens
    bare = tmp_path / "bare"
    shutil.copytree(home, bare)
    (bare / "catalog.duckdb.guard").unlink()
    q = mailarchive(bare, "stats", check=None)
    assert q.returncode == 3 and "is damaged" in " ".join(q.stderr.split()), q.stderr

    # a reader changes nothing and says what repairs it
    before = _sha(home / "catalog.duckdb")
    r = mailarchive(home, "stats", check=None)
    err = " ".join(r.stderr.split())
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "in the middle of a checkpoint" in err and "run the interrupted command again" in err, err
    assert _sha(home / "catalog.duckdb") == before and (home / "catalog.duckdb.guard").exists()

    # the writer run again puts the blocks back, replays the WAL and resumes
    again = _import(home, source)
    assert again.returncode == 0, again.stderr
    assert not (home / "catalog.duckdb.guard").exists()
    assert _blobs(home) == clean
    v = mailarchive(home, "--json", "verify", check=None)
    assert v.returncode == 0, v.stdout[-2000:]
