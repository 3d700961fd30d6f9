"""A full disk under the catalog ends an import with exit 3 and one message.

The home lives on a small tmpfs (mounted by the test, which runs as root),
filled up to a few hundred KB, so that the catalog's commit of an import runs
out of space. The import must exit 3 with one message naming the catalog and
the next step, no traceback; its run row says ``failed``, not ``running``; and
once space is freed, the same command finishes the job.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import mailarchive

pytestmark = pytest.mark.security

MAILS = 1500


@pytest.fixture
def small_disk(tmp_path):
    """A 8 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        if os.environ.get("CI") == "true":
            pytest.fail("this test mounts a tmpfs and must run as root in CI")
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave_kib: int) -> Path:
    free = shutil.disk_usage(mnt).free
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        remaining = free - leave_kib * 1024
        block = b"\0" * (1 << 20)
        while remaining > 0:
            f.write(block[: min(len(block), remaining)])
            remaining -= len(block)
    return filler


def _source(root: Path) -> Path:
    root.mkdir()
    for i in range(MAILS):
        to = ", ".join(f"person{j}.{i}@example{j}.org" for j in range(30))
        (root / f"m{i}.eml").write_text(
            f"From: sender{i}@x.example\nTo: {to}\nSubject: message {i} {'s' * 150}\n"
            f"Message-ID: <m{i}@disk.test>\nDate: Tue, 15 Jan 2019 10:00:00 +0000\n\nbody {i}\n"
        )
    return root


def test_full_disk_under_the_catalog(small_disk, tmp_path):
    home = small_disk / "home"
    env = {"MAILARCHIVE_WORKERS": "0"}
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    source = _source(tmp_path / "src")
    # room for the checkpoint guard (a metadata block, docs/reliability.md A6), not for the import's commits
    filler = _fill(small_disk, leave_kib=600)

    p = mailarchive(home, "import", "eml", str(source), env=env, check=None)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.count("error:") == 1, p.stderr
    message = "".join(p.stderr.split())  # the console wraps long lines, even inside a path
    for part in (f"the catalog {home / 'catalog.duckdb'} could not be written", "No space left on device",
                 "free space on its disk", "rerun the command"):
        assert "".join(part.split()) in message, p.stderr

    runs = json.loads(mailarchive(home, "sql", "SELECT run_id, status FROM runs ORDER BY run_id",
                                  "--format", "json").stdout)
    assert runs and all(r["status"] != "running" for r in runs)
    assert runs[-1]["status"] == "failed"

    # With space again, the same command finishes the job: every mail is archived once.
    filler.unlink()
    done = mailarchive(home, "import", "eml", str(source), env=env, json_out=True).result
    assert done["errors"] == 0
    count = json.loads(mailarchive(home, "sql", "SELECT count(*) AS n FROM messages", "--format", "json").stdout)
    assert count[0]["n"] == MAILS


def test_no_room_for_the_checkpoint_guard_refuses_the_writer_before_it_writes(small_disk, tmp_path):
    """Too little space for the guard of the catalog's checkpoints (one 256 KiB metadata block): the writer
    stops with the same clear error before its first commit; nothing is half-done, and with space again the
    same command does the whole job."""
    home = small_disk / "home"
    env = {"MAILARCHIVE_WORKERS": "0"}
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    source = _source(tmp_path / "src")
    before = (home / "catalog.duckdb").read_bytes()
    filler = _fill(small_disk, leave_kib=150)
    p = mailarchive(home, "import", "eml", str(source), env=env, check=None)
    assert p.returncode == 3 and "Traceback" not in p.stderr and p.stderr.count("error:") == 1, p.stderr
    message = "".join(p.stderr.split())
    for part in (f"the catalog {home / 'catalog.duckdb'} could not be written", "checkpoint guard",
                 "No space left on device", "free space on its disk"):
        assert "".join(part.split()) in message, p.stderr
    assert (home / "catalog.duckdb").read_bytes() == before  # refused before anything was written
    assert not list(home.glob("catalog.duckdb.guard*"))
    filler.unlink()
    done = mailarchive(home, "import", "eml", str(source), env=env, json_out=True).result
    assert done["errors"] == 0 and done["archived"] == MAILS


def test_a_run_that_could_not_record_its_end_is_marked_failed_by_the_next_writer(tmp_path):
    """When even the failed status cannot be written (disk still full, or the process died),
    the next command that holds the writer lock marks the run failed."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    source = tmp_path / "src"
    source.mkdir()
    for i in range(40):
        (source / f"m{i}.eml").write_text(f"From: a@x.example\nMessage-ID: <d{i}@t>\nSubject: {i}\n\nbody {i} {'b' * 3000}\n")
    env = {"MAILARCHIVE_WORKERS": "0", "MAILARCHIVE_PACK_TARGET": "20000", "MAILARCHIVE_FAULT": "after_pack_seal:2"}
    p = mailarchive(home, "import", "eml", str(source), env=env, check=None)
    assert p.returncode == -9
    runs = json.loads(mailarchive(home, "sql", "SELECT status FROM runs", "--format", "json").stdout)
    assert [r["status"] for r in runs] == ["running"]  # readers leave it: they cannot know
    mailarchive(home, "import", "eml", str(source), env={"MAILARCHIVE_WORKERS": "0"})
    runs = json.loads(mailarchive(home, "sql", "SELECT run_id, status FROM runs ORDER BY run_id",
                                  "--format", "json").stdout)
    assert [r["status"] for r in runs] == ["failed", "complete"]
