"""G7: no key bytes in core dumps. A crashing `mailarchive` (and each of its workers) writes no core file.

The control shows that this machine does write core files for a process that allows them
(`kernel.core_pattern` names a file, here the process's working directory); then a real import,
started with `ulimit -c unlimited` as a careless operator would, is stopped mid-run with SIGABRT
sent to a worker and to the main process: neither leaves a core file behind.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive
from tests.tampering import child_pids as _children

pytestmark = pytest.mark.security


def _unlimited_cores() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _cores(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name.startswith("core"))


def _require_core_files(tmp_path: Path) -> None:
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    control = tmp_path / "control"
    control.mkdir()
    subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"],
                   cwd=control, preexec_fn=_unlimited_cores, capture_output=True)
    if not _cores(control):
        message = f"this machine writes no core files (core_pattern {pattern!r}): G7 cannot be shown here"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_g7_a_crashing_import_and_its_workers_leave_no_core_file(tmp_path):
    _require_core_files(tmp_path)
    home, src, run = tmp_path / "home", tmp_path / "src", tmp_path / "run"
    src.mkdir()
    run.mkdir()
    for i in range(8):
        (src / f"{i}.eml").write_text(f"From: a@example.com\nSubject: core {i}\nMessage-ID: <core-{i}@x>\n\n"
                                      + f"body {i} " * 400 + "\n")
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "4096",
           "MAILARCHIVE_WORKERS": "2", "MAILARCHIVE_FAULT_SLOW": "worker_prepare:600"}
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "import", "eml", str(src)],
                            cwd=run, env=env, preexec_fn=_unlimited_cores,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        workers: set[int] = set()
        for _ in range(600):  # the workers are up (and stalled) once the first chunks went out
            workers = _children(proc.pid)
            if len(workers) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        core_line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core_line.split()[4:6] == ["0", "0"], core_line
        worker = min(workers)
        os.kill(worker, signal.SIGABRT)
        for _ in range(100):
            if not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[:1]:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.5)
    assert _cores(run) == [], "a core file holds the memory of a process that had the archive key"
