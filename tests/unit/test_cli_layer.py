"""The CLI package is the top layer: nothing outside ``toolkit/cli/`` imports it, and its command
modules follow the command tree (the scheme in toolkit/cli/__init__.py's docstring)."""
from __future__ import annotations

import ast

import click

from tests.corpora import REPO

CORE = ["toolkit", "importers", "exporters", "verify", "media_tools"]
#: ``python -m toolkit`` runs the CLI: the entry point is above the CLI, not below it.
ENTRY_POINTS = {"toolkit/__main__.py"}


def _module_name(path, root=REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path, root=REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def cli_imports_outside_cli(root=REPO) -> list[str]:
    found = []
    for top in CORE:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith("toolkit/cli/") or rel in ENTRY_POINTS:
                continue
            for line, name in _imported(path, root):
                if name == "toolkit.cli" or name.startswith("toolkit.cli."):
                    found.append(f"{rel}:{line} imports {name}")
    return found


def test_nothing_outside_the_cli_package_imports_it():
    assert cli_imports_outside_cli() == []


def test_the_check_sees_a_relative_import_of_the_cli(tmp_path):
    # the resolver must see ``from ..cli.main import x`` in toolkit/storage/ as toolkit.cli.main. The probe lies in a
    # tree of its own: written into the source tree, a test running beside this one (tests/cli_server.py imports
    # every module of the packages) imported it and failed
    path = tmp_path / "toolkit" / "storage" / "_probe_layer.py"
    path.parent.mkdir(parents=True)
    path.write_text("from ..cli.main import cli\nimport toolkit.cli.output\n", encoding="utf-8")
    (tmp_path / "toolkit" / "cli").mkdir()
    (tmp_path / "toolkit" / "cli" / "main.py").write_text("from ..storage import x\n", encoding="utf-8")  # inside: fine
    found = cli_imports_outside_cli(tmp_path)
    assert found == ["toolkit/storage/_probe_layer.py:1 imports toolkit.cli.main",
                     "toolkit/storage/_probe_layer.py:1 imports toolkit.cli.main.cli",
                     "toolkit/storage/_probe_layer.py:2 imports toolkit.cli.output"]


#: Commands that live in the module of the command they belong with (toolkit/cli/__init__.py).
HOMED_ELSEWHERE = {("restore",): "mirror", ("schedule",): "mirror", ("verify-evidence",): "verify",
                   ("import", "source"): "config"}


def _walk(cmd, path):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + (name,))


def test_command_modules_follow_the_command_tree():
    from toolkit.cli.main import COMMAND_MODULES, _register, cli

    _register()
    wrong = []
    for top, cmd in cli.commands.items():
        for path, sub in _walk(cmd, (top,)):
            if isinstance(sub, click.Group):
                continue  # groups are made by main.subgroup; their commands say where they live
            module = sub.callback.__module__.removeprefix("toolkit.cli.commands.")
            expected = HOMED_ELSEWHERE.get(path)
            prefix = top.replace("-", "_")
            if expected is not None and module != expected:
                wrong.append(f"{' '.join(path)} in {module}, documented in {expected}")
            if expected is None and module != prefix and not module.startswith(prefix + "_"):
                wrong.append(f"{' '.join(path)} in {module}: not named after `{top}`")
            if module not in COMMAND_MODULES.get(top, []):
                wrong.append(f"{' '.join(path)} in {module}, not listed in COMMAND_MODULES[{top!r}]")
    assert wrong == []
    assert set(COMMAND_MODULES) == set(cli.commands)


def test_the_product_imports_no_test_equipment():
    # the test TSA (forged tokens, hanging answers) lives in tests/services/; the demo has its own
    found = []
    for top in CORE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            found += [f"{rel}:{line} imports {name}" for line, name in _imported(path)
                      if name == "tests" or name.startswith("tests.") or name.endswith("localtsa")]
    assert found == []
    assert not (REPO / "verify" / "localtsa.py").exists()


def test_subcommand_modules_follow_the_command_tree():
    from toolkit.cli.main import COMMAND_MODULES, SUBCOMMAND_MODULES, LazySubgroup, _register, cli

    _register()
    for group, (maker, table) in SUBCOMMAND_MODULES.items():
        cmd = cli.commands[group]
        assert isinstance(cmd, LazySubgroup) and maker in COMMAND_MODULES[group]
        assert set(table) == set(cmd.commands), group  # every subcommand listed, none that is gone
        for name, sub in cmd.commands.items():
            module = sub.callback.__module__.removeprefix("toolkit.cli.commands.")
            assert module in table[name], (group, name, module)
            assert set(table[name]) <= set(COMMAND_MODULES[group])


def _loaded_by_import(sub: str) -> set[str]:
    """The importer and command modules loaded once ``mailarchive import SUB`` is resolved, in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, click\n"
            "from toolkit.cli.main import cli\n"
            "ctx = click.Context(cli)\n"
            f"cli.get_command(ctx, 'import').get_command(ctx, {sub!r})\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('importers', 'toolkit.cli.commands.')))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return set(out.split())


def test_import_mbox_loads_neither_the_other_importers_nor_their_commands():
    loaded = _loaded_by_import("mbox")
    assert "toolkit.cli.commands.import_mbox" in loaded and "importers.mbox" in loaded
    assert not loaded & {"importers.eml", "importers.share", "importers.pst", "importers.msg", "importers.maildir",
                         "toolkit.cli.commands.import_maildir", "toolkit.cli.commands.import_outlook"}, loaded


def test_import_maildir_loads_neither_the_share_importer_nor_the_mbox_reader():
    loaded = _loaded_by_import("maildir")
    assert "toolkit.cli.commands.import_maildir" in loaded and "importers.maildir" in loaded
    assert not loaded & {"importers.share", "importers.mbox", "importers.pst", "importers.msg",
                         "toolkit.cli.commands.import_share", "toolkit.cli.commands.import_mbox"}, loaded


def test_verify_loads_neither_the_export_commands_nor_the_exporters():
    import subprocess
    import sys

    code = ("import sys, click\n"
            "from toolkit.cli.main import cli\n"
            "cli.get_command(click.Context(cli), 'verify')\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('exporters', 'toolkit.cli.commands.')))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    loaded = set(out.split())
    assert "toolkit.cli.commands.verify" in loaded
    assert not {m for m in loaded if m.startswith(("exporters", "toolkit.cli.commands.export"))}, loaded
