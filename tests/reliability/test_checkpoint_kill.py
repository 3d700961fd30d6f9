"""docs/reliability.md A6: kill -9 inside DuckDB's checkpoint of a large encrypted catalog.

A child process opens the catalog of a real archive whose last commits (about 10 MB of rows)
live only in the WAL, saves the checkpoint guard as the toolkit's writer sessions do, and runs
CHECKPOINT, which writes those rows into the catalog file; it is killed at seeded random moments of
that write (`MAILARCHIVE_CRASH_SEED` replays a printed seed). The next writer (`db adopt`) puts back
what the guard saved if the checkpoint was cut short, and every reopen through the command line then
sees exactly the committed rows: never a catalog that opens with other rows, never one that no longer
opens, never a traceback. (tests/reliability/test_checkpoint_tear.py tears the in-place writes exactly.)
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import mailarchive
from toolkit.archive import Archive

ROWS = 100_000  # run_errors rows of ~100 bytes each: a checkpoint that takes a noticeable time
ATTEMPTS = 4

_CHILD = r"""
import os, signal, sys, time
from toolkit.catalog import _connection
path, key_hex, mode, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = _connection()
con.execute("SET enable_progress_bar = false")
con.execute("SET checkpoint_threshold = '100GB'")  # nothing checkpoints on its own
con.execute("SET VARIABLE k = ?", [key_hex])
con.execute(f"ATTACH '{path}' AS cat (ENCRYPTION_KEY getvariable('k'), ENCRYPTION_CIPHER 'GCM')")
if mode == "fill":
    # commits under one row group each, so that DuckDB logs the rows in the WAL instead of
    # writing them straight into the file (what it does with a bulk insert)
    for first in range(0, rows, 50_000):
        con.execute("INSERT INTO cat.run_errors SELECT 0, 'a6-filler', 'ref-' || i::VARCHAR, "
                    "md5(i::VARCHAR) || md5((i + 1)::VARCHAR) || md5((i + 2)::VARCHAR) FROM range(?, ?) t(i)",
                    [first, min(first + 50_000, rows)])
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint at close: the rows stay in the WAL
from pathlib import Path
from toolkit.catalog import checkpoint_guard
checkpoint_guard.save(Path(path), con)
print("checkpointing", flush=True)
start = time.monotonic()
con.execute("CHECKPOINT cat")
print(f"done {time.monotonic() - start:.3f}", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _child(home: Path, key_hex: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(home / "catalog.duckdb"), key_hex, mode, str(ROWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """An archive whose catalog holds ROWS filler rows in its WAL only, and its catalog key."""
    root = tmp_path_factory.mktemp("a6ckpt")
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "m1"))
    archive = Archive.open(home)
    try:
        key_hex = archive.catalog._key_hex
    finally:
        archive.close()
    proc = _child(home, key_hex, "fill")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL and "committed" in out, err
    assert (home / "catalog.duckdb.wal").stat().st_size > 3_000_000  # the rows are in the WAL
    return home, key_hex


def _copy(home: Path, dest: Path) -> Path:
    shutil.copytree(home, dest, symlinks=True)
    return dest


def _reopen(home: Path) -> str:
    """'ok' if, after the next writer, the catalog opens with exactly the committed rows; 'damaged' for the
    clean refusal (which the guard must now prevent)."""
    w = mailarchive(home, "db", "adopt", check=None)
    assert "Traceback" not in w.stderr, w.stderr
    assert not (home / "catalog.duckdb.guard").exists() or w.returncode != 0, w.stderr
    p = mailarchive(home, "sql", "SELECT count(*) AS n FROM run_errors WHERE kind = 'a6-filler'", "--format", "json",
                    check=None)
    assert "Traceback" not in p.stderr, p.stderr
    if p.returncode == 0:
        assert json.loads(p.stdout)[0]["n"] == ROWS, p.stdout  # all committed rows, not a part of them
        return "ok"
    err = " ".join(p.stderr.split())
    assert p.returncode == 3 and "is damaged" in err, (p.returncode, err)
    assert "mailarchive restore" in err and "db rebuild --force" in err, err
    return "damaged"


def test_a6_kill_inside_the_checkpoint_write_never_opens_a_wrong_catalog(template, tmp_path):
    home, key_hex = template
    seed = int(os.environ.get("MAILARCHIVE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    # an uncut checkpoint: how long the write takes here, and that it keeps every row
    uncut = _copy(home, tmp_path / "uncut")
    proc = _child(uncut, key_hex, "checkpoint")
    out, err = proc.communicate(timeout=300)
    assert "done" in out, err
    seconds = float(out.split("done")[1].split()[0])
    assert not (uncut / "catalog.duckdb.wal").exists() or (uncut / "catalog.duckdb.wal").stat().st_size == 0
    assert _reopen(uncut) == "ok"
    landed, outcomes = 0, []
    for attempt in range(ATTEMPTS):
        work = _copy(home, tmp_path / f"attempt-{attempt}")
        proc = _child(work, key_hex, "checkpoint")
        first = proc.stdout.readline().strip()
        assert first == "checkpointing", (first, proc.communicate(timeout=60))
        # every other kill in the first half: a checkpoint that runs faster than the uncut one measured (a busy
        # machine measured it slow) is still hit, and the later kills cover the end of the write
        delay = rng.uniform(0.0, 1.0 if attempt % 2 else 0.5) * seconds
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        landed += "done" not in out  # killed before CHECKPOINT returned
        outcomes.append((round(delay, 3), _reopen(work)))
        # a second open of the same files gives the same answer (the first open changed nothing wrongly)
        assert _reopen(work) == outcomes[-1][1], f"seed {seed}, attempt {attempt}"
    print(f"A6 checkpoint kills: seed {seed}, uncut {seconds:.3f}s, outcomes {outcomes}")
    assert all(outcome == "ok" for _, outcome in outcomes), f"seed {seed}: {outcomes}"
    assert landed, f"seed {seed}: no kill landed inside a checkpoint ({seconds:.3f}s uncut); outcomes {outcomes}"
