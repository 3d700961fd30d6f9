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


@pytest.mark.xfail(strict=False, reason="verify findings, shared_lock, restore/mirror and a few more sites still "
                                       "phrase their hints in the core; the next wave converts them")
def test_no_core_string_names_a_command():
    found = []
    for top in CORE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("toolkit/cli/"):
                continue
            found += [f"{rel}:{line}: {text.strip()[:70]}" for line, text in _command_strings(path)]
    assert found == [], "\n".join(found)
