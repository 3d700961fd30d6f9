"""Reads of a page of msg_ids (toolkit/catalog/reads.py): the ids go to DuckDB as an Arrow column, never as a
Python list parameter, which DuckDB's binding converts element by element, trying to import pandas for each
(docs/architecture.md "Per-statement and per-file costs that were not the work")."""
from __future__ import annotations

import sys

import duckdb
import pyarrow  # noqa: F401  (imported before the recorder starts, as in every run)

from toolkit.catalog import reads


class _Recorder:
    def __init__(self):
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None


def test_sightings_of_a_page_search_no_module_and_keep_their_order(monkeypatch):
    con = duckdb.connect()
    con.execute("CREATE TABLE sightings (msg_id BIGINT, folder VARCHAR, via VARCHAR, flags VARCHAR, "
                "internal_date TIMESTAMPTZ, seen_at TIMESTAMPTZ, run_id BIGINT)")
    con.execute("INSERT INTO sightings SELECT i % 400, 'F' || (i % 7), 'imap', NULL, NULL, "
                "TIMESTAMPTZ '2020-01-01' + to_seconds(1000 - i), i FROM range(2000) t(i)")
    reads.sightings_of(con, [1])  # what DuckDB loads once per process
    recorder = _Recorder()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    ids = list(range(0, 500, 2))
    rows = reads.sightings_of(con, ids + ids[:10])
    assert recorder.names == []
    want = con.execute("SELECT msg_id, folder, via, flags, internal_date FROM sightings WHERE msg_id % 2 = 0 "
                       "AND msg_id < 500 ORDER BY msg_id, seen_at, run_id").fetchall()
    assert rows == want and len(rows) == 1000


def test_an_imports_reads_by_key_cost_no_searches_per_key(tmp_path, monkeypatch):
    """split_by_conversion (a chunk's found keys, when converted mail is archived) and stored_evidence (the messages
    a journal report points at) hand their keys over as Arrow columns: 300 keys make DuckDB's binding search for
    no more modules than 3 do (the session's own statements with parameters search as they always did)."""
    import toolkit
    from toolkit.catalog import ingest_rows

    home = tmp_path / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=tmp_path / "kb.txt")
    searched = {}
    with toolkit.open_archive(home, writer=True) as archive:
        catalog = archive.catalog
        ingest_rows.split_by_conversion(catalog, ["k"], [1])
        ingest_rows.stored_evidence(catalog, [1])
        for n in (3, 300):
            recorder = _Recorder()
            monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
            answers = (ingest_rows.split_by_conversion(catalog, [f"k{i}" for i in range(n)], list(range(n))),
                       ingest_rows.stored_evidence(catalog, list(range(n))))
            monkeypatch.undo()
            searched[n] = len(recorder.names)
            assert answers == (({}, {}, set()), ([], []))
    assert searched[300] == searched[3]


def test_reads_of_a_pack_or_a_selection_cost_no_searches_per_key(tmp_path, monkeypatch):
    """``db adopt``'s per-pack reads and writes (tombstoned blobs, shared Message-IDs), an import's conflict flags,
    the evidence of a selection's mails and the purge's lookups: 300 keys search for no more modules than 3."""
    import toolkit
    from toolkit.catalog import ingest_rows, purge_rows, reads

    home = tmp_path / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=tmp_path / "kb.txt")
    calls = {
        "tombstoned_blobs": lambda con, n: purge_rows.tombstoned_blobs(con, [f"{i:064x}" for i in range(n)]),
        "tombstones_of": lambda con, n: purge_rows.tombstones_of(con, list(range(n))),
        "approved_items": lambda con, n: purge_rows.approved_items(con, list(range(n))),
        "message_batches": lambda con, n: reads.message_batches(con, list(range(n))),
        "flag_shared_message_ids": lambda con, n: ingest_rows.flag_shared_message_ids(con, list(range(n))),
        "flag_id_conflicts": lambda con, n: ingest_rows.flag_id_conflicts(con, list(range(n))),
    }
    with toolkit.open_archive(home, writer=True) as archive:
        for name, call in calls.items():
            searched = {}
            with archive.catalog.writing() as con:
                call(con, 1)
                for n in (3, 300):
                    recorder = _Recorder()
                    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
                    answer = call(con, n)
                    monkeypatch.undo()
                    searched[n] = len(recorder.names)
                    assert not answer
            assert searched[300] == searched[3], name
