"""docs/reliability.md A8: kill -9 while `key backup` writes the printable key backup.

The final name holds either nothing or a complete backup that gives the archive key back;
never a half-written file. A rerun with the same --out then succeeds. Two named kill points
(the temp file written and fsynced; read back, just before the rename) and a seeded series of
kills at random moments of a real run under the strong (default) KDF profile, whose two
Argon2id derivations make the run long enough for kills to land inside it.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib
import uuid

import pytest

from cli import PASSWORD, mailarchive
from toolkit.keybackup import import_key_backup


def _archive(home):
    return (home / "key").read_bytes(), uuid.UUID(tomllib.loads((home / "archive.toml").read_text())["uuid"])


def _final_name_is_empty_or_complete(out, key, archive_uuid) -> bool:
    """True if ``out`` holds a complete backup of ``key``; False if there is none. Anything else fails."""
    if not out.exists():
        return False
    assert import_key_backup(out.read_text(), PASSWORD.encode(), expected_uuid=archive_uuid).key == key
    return True


@pytest.mark.parametrize("point", ["key_backup_temp_written", "key_backup_before_rename"])
def test_a8_kill_at_a_point_of_the_key_backup_write_leaves_nothing_under_the_final_name(tmp_path, point):
    home, out = tmp_path / "home", tmp_path / "backup.txt"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "first.txt"))
    key, archive_uuid = _archive(home)
    p = mailarchive(home, "key", "backup", "--out", str(out), env={"MAILARCHIVE_FAULT": point}, check=None)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    assert not out.exists()
    mailarchive(home, "key", "backup", "--out", str(out))
    assert _final_name_is_empty_or_complete(out, key, archive_uuid)
    (home / "key").unlink()
    mailarchive(home, "key", "restore", "--from", str(out))
    assert (home / "key").read_bytes() == key


def test_a8_kill_at_random_moments_of_a_key_backup_run(tmp_path):
    seed = int(os.environ.get("MAILARCHIVE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    home = tmp_path / "home"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "first.txt"), kdf_profile=None)  # strong: a long write
    key, archive_uuid = _archive(home)
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "key", "backup", "--out"]
    start = time.monotonic()
    mailarchive(home, "key", "backup", "--out", str(tmp_path / "uncut.txt"))
    uncut = time.monotonic() - start
    killed = 0
    for attempt in range(6):
        out = tmp_path / f"backup-{attempt}.txt"
        delay = rng.uniform(0.3, 1.0) * uncut
        proc = subprocess.Popen([*cmd, str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=300)
        killed += rc == -signal.SIGKILL
        complete = _final_name_is_empty_or_complete(out, key, archive_uuid)
        assert complete or rc == -signal.SIGKILL, f"seed {seed}, attempt {attempt}: exit {rc} without a backup"
        if not complete:
            mailarchive(home, "key", "backup", "--out", str(out))  # the rerun writes it
            assert _final_name_is_empty_or_complete(out, key, archive_uuid), f"seed {seed}, attempt {attempt}"
    assert killed, f"seed {seed}: no kill landed inside a run (uncut run {uncut:.2f}s)"
