"""`--where` is exactly one SQL expression, run in the restricted session.

The attack of the issue closes the parenthesis the condition is put in, runs a
COPY, and opens a new SELECT. It must exit 2 and write nothing, with and
without --dry-run, for every command that takes --where.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.errors import UsageError
from toolkit.catalog.user_sql import check_condition

pytestmark = pytest.mark.security


def _digest(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive_home(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("where")
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "medium"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    return home


def _attack(target: Path) -> str:
    # The trailing SELECT binds the aliases the exporters' own SQL goes on with (m, p).
    return f"true); COPY messages TO '{target}'; SELECT 1 FROM messages m JOIN packs p USING (pack_id) WHERE (true"


@pytest.mark.parametrize("command,dry_run", [
    (["export", "eml"], True), (["export", "eml"], False),
    (["export", "mbox"], True), (["export", "mbox"], False),
    (["export", "metadata"], True), (["export", "metadata"], False),
    (["export", "evidence"], False),  # it has no --dry-run
])
def test_the_escape_writes_nothing(archive_home, tmp_path, command, dry_run):
    stolen = tmp_path / "stolen.csv"
    dest = tmp_path / ("out.csv" if command[1] == "metadata" else "out")
    before = _digest(archive_home)
    args = [*command, str(dest), "--where", _attack(stolen)] + (["--dry-run"] if dry_run else [])
    p = mailarchive(archive_home, *args, check=None)
    assert not stolen.exists()
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--where" in p.stderr and "Traceback" not in p.stderr
    assert not dest.exists()  # refused before anything was created
    assert _digest(archive_home) == before


def test_escaping_the_and_of_the_other_filters_is_refused(archive_home, tmp_path):
    """`false) OR (true` would turn `since AND (where)` into `(since AND false) OR true`."""
    p = mailarchive(archive_home, "export", "eml", str(tmp_path / "o"), "--since", "2100-01-01",
                    "--where", "false) OR (true", "--dry-run", check=None)
    assert p.returncode == 2, p.stdout + p.stderr


def test_good_conditions_select(archive_home, tmp_path):
    everything = mailarchive(archive_home, "export", "eml", str(tmp_path / "a"), "--dry-run", json_out=True).result
    assert everything["count"] > 2
    for cond, expected in [
        ("m.size > 0", everything["count"]),
        ("m.msg_id IN (SELECT msg_id FROM sightings WHERE decision = 'new') AND m.msg_id <= 2", 2),
        ("m.subject LIKE '%)%' OR m.subject = '); --'", None),
        ("m.msg_id = 1 -- a trailing comment cannot swallow the closing parenthesis", 1),
    ]:
        r = mailarchive(archive_home, "export", "eml", str(tmp_path / "a"), "--where", cond, "--dry-run",
                        json_out=True).result
        if expected is not None:
            assert r["count"] == expected, cond
    # A condition that selects nothing is a finding (exit 1), never an empty "success".
    p = mailarchive(archive_home, "export", "eml", str(tmp_path / "a"), "--where", "m.size < 0", "--dry-run", check=1)
    assert "matches no message" in p.stderr
    # A condition that runs but touches a file is refused by the session itself.
    p = mailarchive(archive_home, "export", "eml", str(tmp_path / "b"), "--dry-run",
                    "--where", f"m.msg_id IN (SELECT 1 FROM read_blob('{archive_home}/key'))", check=None)
    assert p.returncode == 2 and "disabled by configuration" in p.stderr


@pytest.mark.parametrize("text", [
    "true); COPY messages TO '/tmp/x.csv'; SELECT 1 WHERE (true",
    "true) UNION SELECT 1 WHERE (true",
    "true) FROM read_csv('/etc/passwd') WHERE (true",
    "true) ORDER BY (1",
    "true) LIMIT (1",
    "true) QUALIFY (true",
    "false) OR (true",
    "true) AS x, (1",
    "true)\n,(1",
    "true) --",
    "true) /*",
    "m.size > ?",
    "m.size > $1",
    "",
    "   ",
    "x AS y",
    "DISTINCT m.size > 1",
    "m.size > 1 FROM messages",
])
def test_check_condition_refuses(text):
    with pytest.raises(UsageError, match="--where"):
        check_condition(text)


@pytest.mark.parametrize("text", [
    "m.size > 1000000",
    "m.subject = ')'",
    "m.subject = '''; --'",
    "\"m\".\"size\" > 1",
    "m.msg_id IN (SELECT msg_id FROM sightings s WHERE s.folder = 'INBOX')",
    "m.size > 1 -- comment",
    "(m.size > 1) OR (m.size < 0)",
])
def test_check_condition_accepts(text):
    assert check_condition(text) == f"(\n{text}\n)"
