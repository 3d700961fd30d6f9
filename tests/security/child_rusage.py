"""Run the real `mailarchive` command and measure the peak memory of that child process.

``os.wait4`` gives the rusage of the one child it reaps (on Linux its ``ru_maxrss`` also covers the
worker processes it waited for), so earlier peaks of the test process itself cannot hide a peak.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.cli import PASSWORD


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float

    @property
    def result(self) -> dict:
        return json.loads(self.stdout)


def mailarchive_measured(home: Path, *args: str, env: dict | None = None, timeout: float = 300) -> Measured:
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", *args]
    full_env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=full_env)
        try:
            _, status, usage = _wait4(p.pid, timeout)
        except TimeoutError:
            p.kill()
            _wait4(p.pid, 10)
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(p.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss / 1024)


def _wait4(pid: int, timeout: float):
    import time

    deadline = time.monotonic() + timeout
    while True:
        got_pid, status, usage = os.wait4(pid, os.WNOHANG)
        if got_pid == pid:
            return got_pid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"mailarchive did not end within {timeout} s")
        time.sleep(0.05)
