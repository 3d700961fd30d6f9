"""The core names no ``mailarchive`` command in its errors: an error carries a next-step kind
(``toolkit.errors.NextStep``) and the command line adds the command hint (toolkit/cli/hints.py),
so the operator reads the same message as before."""
from __future__ import annotations

import ast
import re

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.errors import NextStep, NoArchiveError

CORE = ["toolkit", "importers", "exporters", "verify", "media_tools"]


def test_every_next_step_has_a_hint():
    from toolkit.cli.hints import HINTS, REPHRASED

    assert set(HINTS) | set(REPHRASED) == set(NextStep) and not set(HINTS) & set(REPHRASED)
    texts = [*HINTS.values(), *REPHRASED.values()]
    assert all(_names_the_command_line(text) for text in texts)


def test_the_core_error_names_no_command_and_the_cli_adds_it(tmp_path):
    home = tmp_path / "nowhere"
    with pytest.raises(NoArchiveError) as info:
        Archive.open(home)
    assert "mailarchive" not in str(info.value) and "--archive" not in str(info.value)
    assert info.value.next_step is NextStep.CHOOSE_OR_INIT_ARCHIVE
    p = mailarchive(home, "stats", check=10)
    assert (f"no archive at {home} (no archive.toml); pass --archive HOME, set MAILARCHIVE_HOME, or run "
            "`mailarchive init`") in " ".join(p.stderr.split())


def _command_line_words():
    """The command line's vocabulary, from its click group: command and group names, and every option."""
    import click

    from toolkit.cli.main import _register, cli

    _register()  # every command module adds its commands
    names, options = set(), set()

    def walk(group):
        for name, cmd in group.commands.items():
            names.add(name)
            options.update(o for p in cmd.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--"))
            if isinstance(cmd, click.Group):
                walk(cmd)

    options.update(o for p in cli.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--"))
    walk(cli)
    return names, options


_NAMES, _OPTIONS = _command_line_words()
_COMMAND = re.compile(r"`(?:mailarchive )?(?:%s)(?: [^`]*)?`" % "|".join(map(re.escape, sorted(_NAMES))))
_OPTION = re.compile(r"(?<![\w-])(?:%s)(?![\w-])" % "|".join(map(re.escape, sorted(_OPTIONS, key=len, reverse=True))))
_VARIABLE = re.compile(r"\bMAILARCHIVE_[A-Z_]+")


def _names_the_command_line(text: str) -> bool:
    """Does the text name a command (`mailarchive db rebuild`, `media retarget`), an option or a variable?"""
    return bool(_COMMAND.search(text) or _OPTION.search(text) or _VARIABLE.search(text))


def test_the_detector_sees_commands_options_and_variables():
    assert _names_the_command_line("run `mailarchive db backup`") and _names_the_command_line("use `media retarget`")
    assert _names_the_command_line("or pass --lock-wait SECONDS") and _names_the_command_line("set MAILARCHIVE_HOME")
    assert not _names_the_command_line("the media list of the archive") and not _names_the_command_line("a -- b")


def _command_strings(path):
    """(line, text) of string constants in the file that name a command, an option or a variable."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if _names_the_command_line(node.value):
                yield node.lineno, node.value


#: Texts the tool writes for a reader of a file, not messages: the printed key backup's instructions and the
#: VERIFY.txt of an evidence bundle name the commands that read them, on purpose.
DOCUMENTS = {"toolkit/keybackup.py"}  # and verify/evidence.py's VERIFY.txt, skipped below

#: Sites not converted yet (file, a piece of the text). Each must still exist, so the list only shrinks:
#: the importers' per-mail problems (kept in the catalog's error rows and the run summary, and reported
#: live through the reporter), the exporters' and tools' checks of an option's own value (the message
#: quotes the option the caller gave), the standalone evidence verifier, and verify's skip note.
NOT_YET = {
    ("toolkit/catalog/user_sql.py", "--where"),
    ("importers/eml_check.py", "--force-raw"),
    ("importers/imap.py", "`import eml`"),
    ("importers/mbox.py", "--variant mboxrd"),
    ("importers/mbox.py", "over the --max-message-size"),
    ("importers/mbox.py", "rerun with --max-message-size"),
    ("importers/mbox.py", "--max-expansion-ratio"),
    ("exporters/filters.py", "--folder needs"),
    ("exporters/imap.py", "--max-per-second"),
    ("exporters/metadata.py", "--format"),
    ("exporters/naming.py", "--mode {text!r}"),
    ("exporters/naming.py", "--mode {text}: only"),
    ("exporters/naming.py", "--mode {text}: the owner"),
    ("verify/checks.py", "only with --full"),
    ("verify/evidence.py", "--trust-bundle-ca after"),
    ("verify/evidence.py", "(--trust-bundle-ca)"),
    ("media_tools/backup.py", "--keep needs"),
    ("media_tools/mirror.py", "--repair"),
}


def _core_sites():
    """(file, line, text) of every string constant in the core that names the command line."""
    for top in CORE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("toolkit/cli/") or rel in DOCUMENTS:
                continue
            for line, text in _command_strings(path):
                if rel == "verify/evidence.py" and text.startswith("How to check this evidence bundle"):
                    continue  # its VERIFY.txt
                yield rel, line, text


def test_no_core_string_names_a_command():
    found, left = [], set(NOT_YET)
    for rel, line, text in _core_sites():
        src = (REPO / rel).read_text(encoding="utf-8").splitlines()[line - 1]
        hits = {(f, piece) for f, piece in NOT_YET if f == rel and (piece in text or piece in src)}
        left -= hits
        if not hits:
            found.append(f"{rel}:{line}: {text.strip()[:70]}")
    assert found == [], "\n".join(found)
    assert left == set(), f"converted, so leave NOT_YET: {sorted(left)}"
