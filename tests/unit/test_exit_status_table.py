"""Exit statuses come from one table (``ExitCode`` in toolkit/errors.py): the --help epilog and the
table in docs/cli.md are both the table's rendering."""
from __future__ import annotations

import re

from tests.corpora import REPO
from toolkit.errors import EXIT_STATUS_HELP, ExitCode, exit_status_markdown


def _docs_table() -> str:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Exit statuses", 1)[1]
    m = re.search(r"^\| code \| meaning \|\n(?:\|.*\|\n)+", section, flags=re.M)
    assert m, "docs/cli.md has no exit-status table under '## Exit statuses'"
    return m.group(0)


def test_docs_exit_status_table_is_the_table():
    assert _docs_table() == exit_status_markdown(), (
        "docs/cli.md's exit-status table differs from ExitCode; paste toolkit.errors.exit_status_markdown()")


def test_docs_table_lists_every_code_once():
    codes = [int(line.split("|")[1]) for line in _docs_table().splitlines()[2:]]
    assert codes == [int(c) for c in ExitCode]


def test_help_epilog_is_the_table():
    lines = EXIT_STATUS_HELP.splitlines()
    assert lines[:2] == ["\b", "Exit status:"]
    assert [(int(line.split()[0]), line.split(None, 1)[1]) for line in lines[2:]] == [(int(c), c.help) for c in ExitCode]


def test_every_code_has_help_and_doc():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 10, 11, 12, 130]
    assert all(c.help and c.doc for c in ExitCode)
