"""Layering of the catalog: SQL lives in the store (toolkit/catalog/) and nowhere else.

Outside ``toolkit/catalog/`` no module runs a statement (``.execute(`` or
``.executemany(``) or holds a string literal that starts like SQL (``SELECT``,
``INSERT``, ``UPDATE``, ...); the one exception is verify's checks
(``verify/checks.py``, ``verify/deep.py``), whose SQL over the metadata is the
check itself and runs through the store's read session. A failure names
``file:line`` of each offender.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("toolkit", "importers", "exporters", "verify", "media_tools")
ALLOWED = ("toolkit/catalog/", "verify/checks.py", "verify/deep.py")
EXECUTE = re.compile(r"\.execute(?:many)?\(")
#: how SQL statements start (CREATE needs what it creates: an IMAP ``CREATE folder`` is not SQL)
SQL_START = re.compile(
    r"\s*(?:SELECT\s|INSERT\s|UPDATE\s|DELETE\s+FROM\b|WITH\s+(?:RECURSIVE\s+)?\w+\s+AS\b|"
    r"(?:CREATE|DROP)\s+(?:OR\s+REPLACE\s+|TEMP\s+|TEMPORARY\s+|UNIQUE\s+)*"
    r"(?:TABLE|VIEW|INDEX|SCHEMA|SEQUENCE|MACRO|TYPE|SECRET)\b|ALTER\s+TABLE\b|"
    r"(?:ATTACH|DETACH|COPY|PRAGMA|LOAD|INSTALL|RESET|CHECKPOINT)\b|SET\s+(?:VARIABLE\s|\w+\s*=)|"
    r"BEGIN\s+TRANSACTION\b|(?:COMMIT|ROLLBACK)\s*$|USE\s+\w+\s*$)"
)


def _sources() -> list[Path]:
    out = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(ALLOWED):
                out.append(path)
    return out


def _literal_starts(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of each string literal's start: plain strings and the first part of f-strings."""
    out = []
    inside_fstring = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            for v in node.values:
                inside_fstring.add(id(v))
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.append((node.lineno, first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside_fstring:
            out.append((node.lineno, node.value))
    return out


def sql_outside_store(paths: list[Path]) -> list[str]:
    """``file:line: what`` for each statement run and each SQL-looking literal in ``paths``."""
    found = []
    for path in paths:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            if EXECUTE.search(line):
                found.append(f"{rel}:{n}: runs SQL: {line.strip()[:80]}")
        for n, s in _literal_starts(ast.parse(text, filename=str(path))):
            if SQL_START.match(s):
                found.append(f"{rel}:{n}: SQL text: {s.strip()[:60]!r}")
    return sorted(set(found))


def test_the_detector_names_file_and_line(tmp_path):
    """The check itself: a statement and SQL literals are found and named; prose and store calls are not."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        'def f(con, ids):\n'
        '    """Select the rows (prose, not SQL)."""\n'
        '    con.execute("SELECT 1")\n'
        '    q = f"UPDATE runs SET status = {ids}"\n'
        '    stamps.mark_batch_stamped(con, 1)\n'
        '    con.executemany(q, ids)\n'
        '    return "WITH x AS (SELECT 1) SELECT * FROM x"\n'
        '\n'
        'def imap(c, name):\n'
        '    c.call(f"CREATE {name}", make)  # an IMAP command, not SQL\n'
        '    return "Select the messages; update the index"\n',
        encoding="utf-8",
    )
    found = sql_outside_store([bad])
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == [3, 4, 6, 7], found
    assert all(f.startswith(str(bad)) for f in found)


def test_no_sql_outside_the_catalog_store():
    found = sql_outside_store(_sources())
    assert not found, "SQL outside toolkit/catalog/ (move it into a named read or write of the store):\n" + "\n".join(found)


#: modules whose functions were split in this refactor (the whole tree is the lead's check after the merge)
SHORT_FUNCTION_MODULES = ("verify/", "toolkit/catalog/", "toolkit/stats.py", "toolkit/retrieval.py",
                          "exporters/layout.py", "exporters/metadata.py")
MAX_FUNCTION_LINES = 80


def test_functions_of_verify_and_the_store_stay_short():
    long = []
    for prefix in SHORT_FUNCTION_MODULES:
        target = ROOT / prefix
        for path in sorted(target.rglob("*.py") if target.is_dir() else [target]):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} has {lines} lines")
    assert not long, "split these into named steps:\n" + "\n".join(long)
