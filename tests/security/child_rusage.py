"""Run the real `mailarchive` command and measure the peak memory of that child process.

``ru_maxrss`` of a process counts what it held before its ``exec`` too, and a child forked from a
large test process starts as large as its parent; so the command is forked from a small launcher
process instead, which reaps it with ``os.wait4`` and reports its ``ru_maxrss`` (on Linux that also
covers the worker processes the command waited for). Earlier peaks of the test process can neither
hide nor inflate the figure.
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


#: Forks the command from this small process, reaps it and writes its exit status and peak RSS to argv[1].
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"status": status, "maxrss": usage.ru_maxrss}, f)
"""


def measured(cmd: list[str], env: dict | None = None, timeout: float = 300) -> Measured:
    """Run ``cmd`` (argv) forked from the small launcher; its exit code, output and own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage.json"
        p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report), *cmd], stdout=out, stderr=err,
                             env=env if env is not None else dict(os.environ), start_new_session=True)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait(10)
            raise TimeoutError(f"{cmd[:3]} did not end within {timeout} s") from None
        result = json.loads(report.read_text())
        out.seek(0)
        err.seek(0)
        return Measured(os.waitstatus_to_exitcode(result["status"]), out.read().decode(), err.read().decode(),
                        result["maxrss"] / 1024)


def mailarchive_measured(home: Path, *args: str, env: dict | None = None, timeout: float = 300) -> Measured:
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", *args]
    full_env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, **(env or {})}
    return measured(cmd, full_env, timeout)
