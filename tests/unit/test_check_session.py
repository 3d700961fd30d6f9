"""verify's read session of the store (toolkit.catalog.check_session): queries only, Arrow tables beside the catalog."""
from __future__ import annotations

import pyarrow as pa
import pytest

from toolkit.catalog import CheckSession, check_session
from toolkit.catalog import stamps


def test_a_check_session_reads_the_catalog_and_registered_tables(catalog):
    with check_session(catalog) as s:
        assert isinstance(s, CheckSession)
        assert s.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        s.register("listing", pa.table({"name": pa.array(["p1", "p2"])}))
        try:
            got = s.execute("WITH l AS (SELECT name FROM listing) "
                            "SELECT count(*) FROM l LEFT JOIN packs p USING (name) WHERE p.name IS NULL").fetchone()[0]
        finally:
            s.unregister("listing")
        assert got == 2
        # the store's named reads take the session like a reading connection
        assert stamps.unbatched_counts(s) == (0, 0)
        assert stamps.open_batch_ids(s) == []


@pytest.mark.parametrize("statement", [
    "DELETE FROM messages",
    "  /* looks harmless */ UPDATE runs SET status = 'failed'",
    "-- a comment\nCREATE TABLE memory.main.x (a INTEGER)",
    "SET enable_external_access = true",
    "ATTACH ':memory:' AS other",
])
def test_a_check_session_refuses_anything_but_a_query(catalog, statement):
    with check_session(catalog) as s:
        with pytest.raises(ValueError, match="queries only"):
            s.execute(statement)
        assert s.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
