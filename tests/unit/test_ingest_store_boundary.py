"""Import, dry run and rebuild ask the catalog store by name: no SQL run from these modules, no table
schema borrowed from the ingest driver, no environment read in the driver."""
from __future__ import annotations

import re

from tests.corpora import REPO
from toolkit.catalog import schema

ASKING_THE_STORE = ["toolkit/ingest.py", "toolkit/ingest_writer.py", "toolkit/dedup.py", "toolkit/known_keys.py",
                    "toolkit/dryrun.py", "media_tools/rebuild.py"]


def test_no_sql_runs_outside_the_store():
    for rel in ASKING_THE_STORE:
        text = (REPO / rel).read_text()
        assert "execute(" not in text, f"{rel} runs SQL itself"
        assert not re.search(r"\b(INSERT|UPDATE|SELECT|DELETE)\b", text), f"{rel} holds SQL text"


def test_the_driver_reads_no_environment():
    assert "os.environ" not in (REPO / "toolkit/ingest.py").read_text()


def test_rebuild_takes_no_schema_from_the_ingest_driver():
    assert "toolkit.ingest import" not in (REPO / "media_tools/rebuild.py").read_text()


def test_the_schemas_name_every_column_of_their_tables(tmp_path):
    """Appends are by column name: each Arrow schema holds exactly the columns of its catalog table."""
    from toolkit.archive import Archive

    with Archive.create(tmp_path / "home", str(tmp_path / "m1")) as a, a.catalog.reading() as con:
        for table, arrow in schema.TABLES.items():
            cols = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
            assert sorted(arrow.names) == sorted(cols), table
