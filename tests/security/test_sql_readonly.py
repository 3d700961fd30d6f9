"""`mailarchive sql` is read-only and reaches nothing but the catalog.

Each attack is run through the real command. It must exit 2 with a one-line
reason (no traceback), and afterwards every file of the home, and a canary file
outside it, has the same SHA-256 as before. Ordinary queries and the CLI's own
CSV/JSON/parquet output keep working.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive

pytestmark = pytest.mark.security


def tree_digest(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under the roots (a root may be a single file)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def archive_home(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sqlro")
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "medium"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    return home


@pytest.fixture
def canary(tmp_path) -> Path:
    p = tmp_path / "canary.txt"
    p.write_text("a file outside the archive that no query may read or change\n")
    return p


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 - the http.server interface
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a,b\n1,2\n")

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def http_recorder():
    """A local HTTP server that records every request (a query must never reach it)."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()


def _attacks(home: Path, tmp: Path, canary: Path, url: str) -> list[str]:
    return [
        f"SELECT * FROM read_blob('{home}/key')",
        f"SELECT content FROM read_text('{canary}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM glob('{home}/*')",
        f"COPY messages TO '{tmp}/x.csv'",
        f"COPY (SELECT 1) TO '{home}/catalog.duckdb'",
        f"SELECT 1; COPY messages TO '{tmp}/y.csv'",
        f"SELECT * FROM query('COPY messages TO ''{tmp}/z.csv''')",
        "SET temp_file_encryption = false",
        "SET enable_external_access = true",
        "INSTALL spatial",
        f"INSTALL spatial FROM '{url}'",
        "LOAD httpfs",
        f"SELECT * FROM read_csv('{url}/data.csv')",
        f"ATTACH '{tmp}/other.duckdb' AS other",
        "DETACH cat",
        "CHECKPOINT",
        "DELETE FROM messages",
        "CREATE TABLE memory.t AS SELECT * FROM messages",
        "SELECT * FROM messages WHERE msg_id = ?",
    ]


def test_every_attack_exits_2_and_changes_nothing(archive_home, tmp_path, canary, http_recorder):
    url, hits = http_recorder
    key_hex = (archive_home / "key").read_bytes().hex()
    before = tree_digest(archive_home, canary)
    for query in _attacks(archive_home, tmp_path, canary, url):
        p = mailarchive(archive_home, "sql", query, check=None)
        assert p.returncode == 2, f"{query!r} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert "error:" in p.stderr and "Traceback" not in p.stderr, (query, p.stderr)
        assert key_hex not in p.stdout + p.stderr
        assert "root:" not in p.stdout + p.stderr
    assert tree_digest(archive_home, canary) == before
    assert sorted(q.name for q in tmp_path.iterdir()) == ["canary.txt"]  # no file written by COPY or ATTACH
    assert hits == []  # nothing went to the network
    # The catalog still opens and holds its mail.
    p = mailarchive(archive_home, "sql", "SELECT count(*) AS n FROM messages", "--format", "json")
    assert json.loads(p.stdout)[0]["n"] > 0


def test_selects_that_touch_files_exit_2_through_duckdb_itself(archive_home, tmp_path):
    """The same attacks written as one SELECT pass the parser check; the locked session refuses them."""
    (tmp_path / "x.txt").write_text("x")
    for query in (f"SELECT * FROM read_text('{tmp_path}/x.txt')", f"FROM read_blob('{archive_home}/key')"):
        p = mailarchive(archive_home, "sql", query, check=None)
        assert p.returncode == 2 and "disabled by configuration" in p.stderr, p.stderr


def test_the_session_cannot_unlock_itself(archive_home):
    """Below the parser check: the connection itself refuses file access and setting changes."""
    archive = Archive.open(archive_home)
    try:
        with archive.catalog.querying() as session:
            con = session._con
            assert con.execute("SELECT count(*) FROM messages").fetchone()[0] > 0  # encrypted catalog, already attached
            for sql in ("SET enable_external_access = true", "SET lock_configuration = false",
                        "SET temp_file_encryption = false", "SET autoload_known_extensions = true"):
                with pytest.raises(duckdb.Error, match="locked"):
                    con.execute(sql)
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"SELECT * FROM read_blob('{archive_home}/key')").fetchall()
            with pytest.raises(duckdb.Error):
                con.execute("INSERT INTO messages SELECT * FROM messages")
            # No trace of the key in what the session can see.
            key_hex = archive.catalog._key_hex
            seen = json.dumps(
                [con.execute(q).fetchall() for q in (
                    "SELECT * FROM duckdb_variables()", "SELECT * FROM duckdb_databases()",
                    "SELECT name, value FROM duckdb_settings()")],
                default=str,
            )
            assert key_hex not in seen and key_hex.upper() not in seen
    finally:
        archive.close()


def test_ordinary_queries_and_the_cli_output_formats(archive_home, tmp_path):
    query = "SELECT decision, count(*) AS n FROM sightings GROUP BY 1 ORDER BY 1"
    table = mailarchive(archive_home, "sql", "SELECT decision, count(*) FROM sightings GROUP BY 1")
    assert "new" in table.stdout

    rows = json.loads(mailarchive(archive_home, "sql", query, "--format", "json").stdout)
    assert sum(r["n"] for r in rows) > 0 and {"decision", "n"} == set(rows[0])

    csv_out = tmp_path / "out.csv"
    mailarchive(archive_home, "sql", query, "--format", "csv", "--out", str(csv_out))
    assert pl.read_csv(csv_out).to_dicts() == rows

    pq_out = tmp_path / "out.parquet"
    mailarchive(archive_home, "sql", query, "--format", "parquet", "--out", str(pq_out))
    assert pl.read_parquet(pq_out).to_dicts() == rows

    json_out = tmp_path / "out.json"
    mailarchive(archive_home, "sql", query, "--format", "json", "--out", str(json_out))
    assert json.loads(json_out.read_text()) == rows

    # Other shapes of a query that DuckDB's parser calls SELECT.
    for q in ("FROM messages LIMIT 1", "DESCRIBE messages", "SHOW TABLES",
              "WITH x AS (SELECT msg_id FROM messages) SELECT count(*) FROM x", "SELECT 1;"):
        mailarchive(archive_home, "sql", q)

    # stats and the quick verify read the catalog on their own sessions and still work.
    stats = mailarchive(archive_home, "stats", json_out=True).result
    assert stats["messages"] > 0
    assert mailarchive(archive_home, "verify", check=None).returncode == 0
