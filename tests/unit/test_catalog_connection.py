"""The catalog connection's settings (docs/formats.md §6): httpfs loaded from the toolkit's environment,
no extension installed or autoloaded."""
from __future__ import annotations

import pytest

from toolkit.catalog.connection import _connection


def test_the_catalog_connection_loads_httpfs_and_autoloads_nothing():
    con = _connection()
    try:
        assert con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()[0]
        for setting in ("autoload_known_extensions", "autoinstall_known_extensions"):
            assert con.execute(f"SELECT current_setting('{setting}')").fetchone()[0] is False
        assert con.execute("SELECT current_setting('temp_file_encryption')").fetchone()[0] is True
    finally:
        con.close()


class _Recorder:
    """A finder first on ``sys.meta_path`` that records every module Python searches for and finds nothing."""

    def __init__(self):
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None


def test_a_statement_with_parameters_searches_for_no_module(monkeypatch):
    """DuckDB's binding tries ``import pandas`` for each statement that binds parameters; without pandas each try
    searched all of sys.path. The catalog module remembers the absence, so such statements search for nothing."""
    import importlib.util
    import sys

    if importlib.util.find_spec("pandas") is not None and sys.modules.get("pandas") is not None:
        pytest.skip("pandas is installed: the binding imports it once, and nothing is remembered")
    con = _connection()
    recorder = _Recorder()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    try:
        for _ in range(3):
            assert con.execute("SELECT ? + 1, len(?::BIGINT[])", [1, [1, 2, 3]]).fetchone() == (2, 3)
    finally:
        con.close()
    assert recorder.names == []


def test_the_absence_of_pandas_is_remembered_only_where_it_is_absent(monkeypatch):
    """With pandas findable, nothing is put in ``sys.modules``; without it, an entry of None."""
    import importlib.util
    import sys

    from toolkit.catalog import connection

    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    connection._remember_that_pandas_is_absent()
    assert "pandas" not in sys.modules
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    connection._remember_that_pandas_is_absent()
    assert "pandas" in sys.modules and sys.modules["pandas"] is None
