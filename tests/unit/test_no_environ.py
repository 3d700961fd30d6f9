"""The core reads no environment: only the command line (``toolkit/cli/``) reads ``os.environ``
and hands values in (docs/cli.md, "Secrets")."""
from __future__ import annotations

import ast


from tests.corpora import REPO

CORE = ["toolkit", "importers", "exporters", "verify", "media_tools"]


def environ_reads(path) -> list[int]:
    """Lines of the file that touch ``os.environ``/``environ`` or call ``getenv``/``getenvb``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb"):
            lines.add(node.lineno)
        elif isinstance(node, ast.Name) and node.id in ("environ", "environb", "getenv", "getenvb"):
            lines.add(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "environb", "getenv", "getenvb") for a in node.names):
            lines.add(node.lineno)
    return sorted(lines)


def core_environ_reads() -> list[str]:
    found = []
    for top in CORE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if not rel.startswith("toolkit/cli/"):
                found += [f"{rel}:{line}" for line in environ_reads(path)]
    return found


def test_the_check_finds_every_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
                     "c = getenv('Z')\nd = os.environ['W']\ne = os.path.join('a')\n", encoding="utf-8")
    assert environ_reads(probe) == [2, 3, 4, 5, 6]


def test_no_environ_outside_the_cli():
    found = core_environ_reads()
    assert found == [], "os.environ/getenv outside toolkit/cli/:\n" + "\n".join(found)


def test_faults_and_eml_read_no_environ():
    # the test hooks this change moved to toolkit/cli/environment.py
    for rel in ("toolkit/faults.py", "importers/eml.py"):
        assert environ_reads(REPO / rel) == [], rel
