"""Ctrl-C on an import from an SMB share ends as an interrupted run with its summary (exit 130).

Ctrl-C at a terminal signals the whole process group, the worker processes
included; one that is still starting up when it comes must not die of it and
take the run down with a traceback.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive


def _spawned_workers(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(entry.name))
    return out


@pytest.mark.samba
def test_ctrl_c_while_workers_start_prints_the_summary(tmp_path, samba, smb_location):
    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    for i in range(400):
        d = root / f"{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04d}.eml").write_text(f"From: a@example.com\nSubject: n{i}\nMessage-ID: <i{i}@x>\n\n" + "body\n" * 200)
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_WORKERS": "2",
           "MAILARCHIVE_PACK_TARGET": str(64 * 1024), "MAILARCHIVE_FAULT_SLOW": "after_db_commit:0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "import", "share", smb_location],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not _spawned_workers(proc.pid):
        time.sleep(0.002)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the workers get it too, while starting
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the interrupted import hung instead of ending with its summary")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "Imported:" in err and "Interrupted" in err, err
