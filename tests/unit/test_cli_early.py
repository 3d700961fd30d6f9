"""toolkit/cli/early.py: which command lines fork ``verify --full``'s workers before click and rich load.

Only ``[global options] verify --full [verify options]`` with options the reading knows; anything else (another
command, an unknown option, ``--help``, ``--subset``, a bad ``--workers``) forks nothing, and the command starts its
workers where it always did.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli.early import verify_full_args


@pytest.mark.parametrize("argv, want", [
    (["verify", "--full"], (Path("archive"), None, True)),
    (["--archive", "/a", "--json", "verify", "--full"], (Path("/a"), None, True)),
    (["--archive=/a", "--quiet", "--smb-no-encrypt", "verify", "--workers", "3", "--full"], (Path("/a"), 3, False)),
    (["--lock-wait", "2", "--log-file", "l.log", "verify", "--full", "--workers=2", "--json-report", "r.json",
      "--at", "2030-01-01", "--crl", "c.pem", "--findings=f.csv", "--html-report", "r.html"], (Path("archive"), 2, True)),
    (["--progress-interval", "5", "verify", "--full", "--full"], (Path("archive"), None, True)),
])
def test_verify_full_forks_for_its_home_and_workers(argv, want, monkeypatch):
    monkeypatch.delenv("MAILARCHIVE_HOME", raising=False)
    assert verify_full_args(argv) == want


def test_the_home_of_the_environment_counts_as_the_command_lines(monkeypatch):
    monkeypatch.setenv("MAILARCHIVE_HOME", "/env/home")
    assert verify_full_args(["verify", "--full"])[0] == Path("/env/home")
    assert verify_full_args(["--archive", "/a", "verify", "--full"])[0] == Path("/a")


@pytest.mark.parametrize("argv", [
    [], ["verify"], ["verify", "--json-report", "r.json"], ["--full", "verify"], ["import", "eml", "--full"],
    ["verify", "--full", "--subset", "10%"], ["verify", "--full", "--seed", "1"], ["verify", "--full", "--help"],
    ["verify", "--full", "-h"], ["--help", "verify", "--full"], ["--version"], ["verify", "--full", "extra"],
    ["verify", "--full", "--workers", "0"], ["verify", "--full", "--workers", "x"], ["verify", "--full", "--workers"],
    ["verify", "--full", "--workers", "²"], ["--archive"], ["--archive", "/a", "verify", "--full", "--"],
    ["--unknown", "verify", "--full"], ["verify", "--full=1"], ["--json=1", "verify", "--full"],
    ["verify-evidence", "--full"], ["verify", "--ful"],
])
def test_anything_else_forks_nothing(argv):
    assert verify_full_args(argv) is None
