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


def _start_in_child(home: str, out) -> None:
    """In a spawned child: start() as the command line's would run it there (the main module imported again)."""
    import sys

    from toolkit.cli import early

    early._is_the_command = lambda: True
    sys.argv = ["mailarchive", "--archive", home, "verify", "--full"]
    early.start()
    out.put("workers" in early._started)


def test_a_spawned_child_of_the_command_forks_nothing(tmp_path):
    """A spawned child (or a fork server) of ``mailarchive verify --full`` imports its main module again, with the
    parent's arguments: it must not fork workers of its own."""
    import multiprocessing

    from toolkit.archive import Archive

    Archive.create(tmp_path / "home", str(tmp_path / "medium"), name="early-child").close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_start_in_child, args=(str(tmp_path / "home"), out))
    child.start()
    try:
        assert out.get(timeout=120) is False
    finally:
        child.join()
