"""The catalog connection's settings (docs/formats.md §6): httpfs loaded from the toolkit's environment,
no extension installed or autoloaded."""
from __future__ import annotations

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
