"""docs/reliability.md stays true: every `file::test` it names exists, and every case ID has a row.

The catalogue maps each case ID (A1 ... Q5) to the tests that exercise it. This check collects
the test functions of each named file with `ast` (no import, no collection run) so a renamed or
deleted test fails here instead of leaving the table pointing at nothing.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"

#: the number of cases per group in the catalogue; a new case is added here and in the doc
GROUP_SIZES = {"A": 12, "B": 8, "C": 21, "D": 14, "E": 8, "F": 8, "G": 7, "H": 7, "I": 18,
               "J": 11, "K": 8, "L": 10, "M": 9, "N": 9, "O": 12, "P": 11, "Q": 7}

_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
_ROW = re.compile(r"^\|\s*([A-Q]\d{1,2})\s*\|", re.M)


def _test_names(path: Path) -> set[str]:
    """Test functions of a file: module level, and methods of classes (as ``name`` alone)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
    return names


def test_every_named_test_exists():
    text = DOC.read_text(encoding="utf-8")
    refs = _REF.findall(text)
    assert len(refs) > 100, "the catalogue names far fewer tests than expected: was the format changed?"
    cache: dict[str, set[str]] = {}
    missing = []
    for file, name in refs:
        path = REPO / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
            continue
        if file not in cache:
            cache[file] = _test_names(path)
        if name not in cache[file]:
            missing.append(f"{file}::{name}")
    assert not missing, "docs/reliability.md names tests that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_every_case_id_has_exactly_one_row():
    rows = _ROW.findall(DOC.read_text(encoding="utf-8"))
    expected = [f"{g}{n}" for g, size in GROUP_SIZES.items() for n in range(1, size + 1)]
    assert sorted(rows) == sorted(expected), (
        "missing: " + ", ".join(sorted(set(expected) - set(rows)))
        + "; unexpected or doubled: " + ", ".join(sorted(r for r in rows if rows.count(r) > 1 or r not in expected))
    )
