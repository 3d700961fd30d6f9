"""No function over 80 lines in the modules listed here (a long function hides its steps; split it into
named ones). Modules join the list once their long functions are split."""
from __future__ import annotations

import ast

import pytest

from tests.corpora import REPO

LIMIT = 80
MODULES = ["toolkit/headers.py", "toolkit/pack.py", "exporters/mbox.py", "toolkit/api.py", "toolkit/lazy.py",
           "docs/examples/migrate_mbox.py"]


def long_functions(path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{n.name}: {n.end_lineno - n.lineno + 1} lines (line {n.lineno})" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > LIMIT]


@pytest.mark.parametrize("module", MODULES)
def test_no_function_over_the_limit(module):
    assert long_functions(REPO / module) == []
