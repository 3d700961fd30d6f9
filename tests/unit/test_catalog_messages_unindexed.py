"""Catalog migration 0172: ``messages`` loses its PRIMARY KEY index (docs/formats.md).

An archive made before it keeps every row and the ``converted_twins`` view; afterwards no index
stands on the table (its checkpoint made each commit slower as the archive grew), so quick
verify's Q05 is what finds a msg_id given twice.
"""
from __future__ import annotations

import datetime as dt
import os

from toolkit.catalog import connection
from toolkit.catalog.connection import Catalog
from toolkit.catalog.migrations import migration_names
from verify.checks import _unique_keys
from verify.report import Report

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)


def _row(msg_id: int, blob: str) -> list:
    return [msg_id, blob, "d" + blob, "p1", 0, 10, 10, 10, f"<{msg_id}@x>", "s", "a@x", None, NOW, None, False,
            None, False, NOW, 1, None]


def _message_constraints(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT constraint_type FROM duckdb_constraints() "
                                      "WHERE database_name = 'cat' AND table_name = 'messages'").fetchall()}


def test_an_older_catalog_keeps_its_rows_and_view_and_loses_the_index(tmp_path, monkeypatch):
    catalog = Catalog(tmp_path / "catalog.duckdb", os.urandom(32))
    older = [name for name in migration_names() if name < "0172"]
    monkeypatch.setattr(connection, "migration_names", lambda: older)
    catalog.migrate()
    with catalog.writing() as con:
        assert "PRIMARY KEY" in _message_constraints(con)
        for i, blob in ((1, "aa"), (2, "bb"), (3, "cc")):
            con.execute(f"INSERT INTO messages VALUES ({', '.join('?' * 20)})", _row(i, blob))
        con.execute("INSERT INTO message_links (msg_id, parent_msg_id, kind, run_id, source_ref) "
                    "VALUES (3, 1, 'converted-twin', 1, 'x.msg')")
        con.execute("INSERT INTO conversions VALUES (3, 'msg', 'mapi2mime/1')")
        before = con.execute("SELECT * FROM messages ORDER BY msg_id").fetchall()
    monkeypatch.undo()
    assert catalog.migrate() == ["0172_messages_without_index"]
    with catalog.writing() as con:
        assert con.execute("SELECT * FROM messages ORDER BY msg_id").fetchall() == before
        assert "PRIMARY KEY" not in _message_constraints(con) and "NOT NULL" in _message_constraints(con)
        assert con.execute("SELECT original_msg_id, converted_msg_id, subject FROM converted_twins").fetchall() == [
            (1, 3, "s")]
        con.execute(f"INSERT INTO messages VALUES ({', '.join('?' * 20)})", _row(2, "dd"))  # no index refuses it
        report = Report()
        _unique_keys(con, report)
    q05 = report.get("Q05")
    assert q05.status != "ok" and any("msg_id 2 is shared by messages [2, 2]" in i["detail"] for i in q05.items), q05
