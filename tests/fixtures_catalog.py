"""A bare encrypted catalog (no archive home around it) as a pytest fixture, for tests of the store's reads
and writes."""
from __future__ import annotations

import pytest


@pytest.fixture
def catalog(tmp_path):
    """A fresh catalog under the test's temp dir, created with the schema's migrations; closed after."""
    from toolkit.catalog import Catalog

    cat = Catalog(tmp_path / "catalog.duckdb", bytes(range(32)))
    cat.create({"uuid": "00000000-0000-0000-0000-000000000000"})
    yield cat
    cat.close()
