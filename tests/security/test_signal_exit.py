"""SIGINT/SIGTERM end an import within 5 s with exit 130, even with a stuck worker.

A real ``mailarchive import eml`` runs on a tree whose preparation hangs: either a
worker process stalls (fault point ``worker_prepare``, outside the per-mail
watchdog, as a worker stuck in code that ignores signals would) or the driver's own
inline preparation of the first chunk stalls (fault point ``prepare_parse`` with
the per-mail limit raised far beyond the test). The signal must end the run within
5 s with exit 130, leave no worker process behind, keep what was committed, and a
rerun must archive every mail exactly once.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive
from tests.tampering import child_pids as _children

pytestmark = pytest.mark.security

N_MAILS = 12


def _source(root: Path) -> None:
    root.mkdir()
    for i in range(N_MAILS):
        body = f"line {i} " * 300  # > 1 KiB, so that a pack target of 4 KiB sends one mail per chunk
        (root / f"{i:03d}.eml").write_text(
            f"From: a{i}@example.com\nTo: b@example.org\nSubject: stop {i}\nMessage-ID: <stop-{i}@example.com>\n\n{body}\n")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _blobs(home: Path) -> list[str]:
    rows = json.loads(mailarchive(home, "sql", "SELECT blob_id FROM messages", "--format", "json").stdout)
    return [r["blob_id"] for r in rows]


@pytest.mark.parametrize("stall,sig", [
    ("worker", signal.SIGTERM), ("worker", signal.SIGINT), ("inline", signal.SIGTERM)])
def test_signal_ends_a_stuck_import_within_5s(tmp_path, stall, sig):
    home, src = tmp_path / "home", tmp_path / "src"
    _source(src)
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "4096", "MAILARCHIVE_WORKERS": "2"}
    if stall == "worker":
        env["MAILARCHIVE_FAULT_SLOW"] = "worker_prepare:600"
    else:
        env["MAILARCHIVE_FAULT_SLOW"] = "prepare_parse:600"
        env["MAILARCHIVE_PARSE_LIMIT"] = "1000"
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(src)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # stalled: workers started (the first chunk is done), or inline at once
            workers = _children(proc.pid)
            if (len(workers) >= 2 if stall == "worker" else time.monotonic() > deadline - 57):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        time.sleep(1.0)
        workers |= _children(proc.pid)
        t = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert elapsed < 5, elapsed
    if stall == "worker":
        assert workers, "the import never started its workers"
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the import"
    committed = _blobs(home)
    assert json.loads(out)["status"] == "interrupted"
    assert len(committed) == json.loads(out)["archived"]  # what the summary reports is in the catalog
    again = mailarchive(home, "--json", "import", "eml", str(src), json_out=True)
    assert again.result["status"] == "complete"
    blobs = _blobs(home)
    assert len(blobs) == len(set(blobs)) == N_MAILS
    assert set(committed) <= set(blobs)


def test_sigterm_ends_an_export_with_130(tmp_path):
    """Not only imports: SIGTERM ends any command as Ctrl-C does (here an export slowed after each file)."""
    home, src, dest = tmp_path / "home", tmp_path / "src", tmp_path / "out"
    _source(src)
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(src))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_FAULT_SLOW": "export_after_file:600"}
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "export", "eml", str(dest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(dest.rglob("*.eml")):
            time.sleep(0.1)
        assert proc.poll() is None and list(dest.rglob("*.eml")), proc.communicate()
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert elapsed < 5, elapsed
