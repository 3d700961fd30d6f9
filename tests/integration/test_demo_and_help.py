"""The demo and the CLI conventions: help everywhere, exit statuses, --json."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest

from tests.cli import mailarchive
from tests.corpora import REPO


def test_demo_runs(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "toolkit", "--json", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr
    import json

    r = json.loads(p.stdout)
    assert r["ok"] is True
    names = [s["step"] for s in r["steps"]]
    assert {"import", "re-import", "export eml", "nothing lost", "timestamp", "db backup", "mirror", "restore",
            "verify --full"} <= set(names)
    assert all(s["ok"] for s in r["steps"])
    import json as _json

    expected = _json.loads((REPO / "sample_data" / "EXPECTED.json").read_text())
    assert r["stats"]["messages"] == expected["all_distinct"]
    assert r["verify"]["findings"] == 0
    assert (tmp_path / "demo" / "verify-report.html").stat().st_size > 1000


def _commands():
    from toolkit.cli.main import _register, cli

    _register()
    out = []

    def walk(cmd, path):
        out.append(path)
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, path + [name])

    walk(cli, [])
    return out


# The help of every command is rendered in this process (click's test runner: the same command tree,
# only the line width differs); the real entry point is run once, for the top-level help.
@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "mailarchive")
def test_every_command_has_help_with_exit_statuses(path):
    from click.testing import CliRunner

    from toolkit.cli.main import cli

    r = CliRunner().invoke(cli, [*path, "--help"], prog_name="mailarchive")
    assert r.exit_code == 0, r.output
    assert "Exit status" in r.output and "130" in r.output
    assert len(r.output.splitlines()) > 5


def test_help_through_the_real_command():
    p = subprocess.run([sys.executable, "-m", "toolkit", "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    assert "Exit status" in p.stdout and "130" in p.stdout
    assert len(p.stdout.splitlines()) > 5


def test_no_archive_and_usage_statuses(tmp_path):
    p = mailarchive(tmp_path / "nothing", "stats", check=10)
    assert "no archive" in p.stderr and "init" in p.stderr
    mailarchive(tmp_path / "nothing", "no-such-command", check=2)
    home = tmp_path / "h"
    mailarchive(home, "init")
    p = mailarchive(home, "init", check=2)
    assert "already" in p.stderr
    p = mailarchive(home, "sql", "SELECT * FROM no_such_table", check=2)
    assert "no_such_table" in p.stderr
    p = mailarchive(home, "sql", "DELETE FROM messages", check=2)
    p = mailarchive(home, "media", "add", "smb://user:pw@host/share", check=2)
    assert "password" in p.stderr
    assert "Traceback" not in p.stderr


def test_json_output_is_one_object(tmp_path):
    import json

    home = tmp_path / "h"
    p = mailarchive(home, "init", json_out=True)
    assert isinstance(json.loads(p.stdout), dict) and p.stdout.count("\n") == 1
