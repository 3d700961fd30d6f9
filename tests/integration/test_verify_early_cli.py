"""``mailarchive verify --full`` started as a process of its own forks its pack workers before click and rich load
(toolkit/cli/early.py): the same report as a run that forks them where it always did, and a command line that
fails its own checks after the fork ends as before (its usage error, no traceback, no worker left behind)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import assert_gone
from tests.cli import mailarchive
from tests.integration.verify_support import build_archive

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("early-cli")
    build_archive(root, None, stamp=False, pack_target=3000)
    return root / "home"


def _fresh(*args: str) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter (not forked from the tests' server, which loaded the CLI already)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    return subprocess.run([sys.executable, "-m", "toolkit", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _checks(out: str) -> list:
    return [(c["id"], c["status"], c["count"], c.get("note"), c["examples"]) for c in json.loads(out)["checks"]]


def test_the_early_workers_give_the_usual_report(home):
    early = _fresh("--archive", str(home), "--json", "verify", "--full", "--workers", "2")
    assert early.returncode == 0, early.stderr
    usual = mailarchive(home, "verify", "--full", "--workers", "2", json_out=True)
    assert _checks(early.stdout) == _checks(usual.stdout)
    assert "Traceback" not in early.stderr


def test_a_usage_error_after_the_fork_is_reported_as_always(home):
    p = _fresh("--archive", str(home), "verify", "--full", "--at", "not-a-time")
    assert p.returncode == 2
    assert "--at not-a-time" in p.stderr and "Traceback" not in p.stderr


def test_a_sigterm_before_the_command_runs_ends_the_early_workers_quietly(home, tmp_path):
    """The window between the early fork and main()'s own SIGTERM handler (its imports): the run stops as
    interrupted (exit 130), without a traceback of the workers, and leaves none of them behind."""
    pids = tmp_path / "pids"
    script = tmp_path / "mailarchive"  # the console script's name: early.start() acts for it
    script.write_text(
        "import os, signal, sys, time\n"
        f"sys.argv = ['mailarchive', '--archive', {str(home)!r}, 'verify', '--full', '--workers', '2']\n"
        "from toolkit.cli import early\n"
        "early.start()\n"
        "pool = early._started['workers'].pool\n"
        f"open({str(pids)!r}, 'w').write(' '.join(map(str, pool._processes)))\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(60)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 130, p.stderr
    assert "interrupted" in p.stderr and "Traceback" not in p.stderr and "Error" not in p.stderr
    workers = [int(x) for x in pids.read_text().split()]
    assert len(workers) == 2
    assert_gone(workers)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_as_the_workers_are_forked_waits_for_the_handler_and_ends_the_run_quietly(home, tmp_path, sig):
    """A SIGTERM or Ctrl-C that comes as the workers have been forked, before the early module's handler is in
    place, is held until it is: the run stops as interrupted (exit 130), no traceback, no worker left (it killed the
    process at once, or was a KeyboardInterrupt traceback of the start-up, and left the workers to the pool's
    pipes)."""
    pids = tmp_path / "pids"
    script = tmp_path / "mailarchive"
    script.write_text(
        "import os, signal, sys, time\n"
        f"sys.argv = ['mailarchive', '--archive', {str(home)!r}, 'verify', '--full', '--workers', '2']\n"
        "from verify import deep\n"
        "forked = deep.EarlyWorkers.__init__\n"
        "def signalled(self, *args, **kwargs):\n"
        "    forked(self, *args, **kwargs)\n"
        f"    open({str(pids)!r}, 'w').write(' '.join(map(str, self.pool._processes)))\n"
        f"    os.kill(os.getpid(), signal.{sig})\n"
        "    time.sleep(0.2)\n"
        "deep.EarlyWorkers.__init__ = signalled\n"
        "from toolkit.cli import early\n"
        "early.start()\n"
        "time.sleep(60)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert p.stderr.strip() == "interrupted", p.stderr
    workers = [int(x) for x in pids.read_text().split()]
    assert len(workers) == 2
    assert_gone(workers)
