"""A damaged catalog is reported at once, not waited on as if another process held its lock.

DuckDB names a damaged file "Corrupt database file: ... checksum ... in block at location 0"; the
word "block" holds "lock", which made the open retry for ATTACH_RETRY_SECONDS (two minutes) before
the damage was reported. The test counts the retries (each one sleeps) instead of timing the open.
"""
from __future__ import annotations

import pytest

from toolkit.archive import Archive
from toolkit.catalog import connection
from toolkit.errors import CatalogError


def test_a_corrupt_catalog_header_is_not_retried_as_a_lock(tmp_path, monkeypatch):
    home = tmp_path / "home"
    Archive.create(home, str(tmp_path / "m")).close()
    catalog_file = home / "catalog.duckdb"
    data = bytearray(catalog_file.read_bytes())
    data[100:4096] = b"\x00" * (4096 - 100)  # the main header: checksum mismatch "in block at location 0"
    catalog_file.write_bytes(bytes(data))
    sleeps: list[float] = []
    monkeypatch.setattr(connection.time, "sleep", sleeps.append)
    with pytest.raises(CatalogError):
        with Archive.open(home).catalog.reading():
            pass
    assert sleeps == []
