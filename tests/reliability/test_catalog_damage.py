"""A damaged, foreign or unacceptable catalog file (docs/reliability.md H1, H3, H4, H6) and a kill -9
while the catalog's write-ahead log holds a commit (A6).

Every case runs the real `mailarchive` command. A catalog that cannot be trusted gives a clear
error naming the cause and the next step (restore from a mirror, or `db rebuild --force`), never a
traceback and never a silent open; the damaged file is left as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.cli import PASSWORD, mailarchive, run_cli
from toolkit.archive import Archive
from toolkit.catalog import CATALOG_NEXT_STEP, _connection
from toolkit.errors import CatalogError

N_MAILS = 40


def _make_source(root: Path, n: int = N_MAILS) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{i:03d}.eml").write_text(
            f"From: a{i}@example.com\nTo: b@example.org\nSubject: catalog damage {i}\nMessage-ID: <cd-{i}@x>\n\n"
            + f"body {i}\n" * 40
        )


def _import(home: Path, source: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "2048"}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return run_cli([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)],
                   env=env, timeout=300)


def _blobs(home: Path) -> list[str]:
    out = mailarchive(home, "sql", "SELECT blob_id FROM messages", "--format", "json").stdout
    return [r["blob_id"] for r in json.loads(out)]


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """One archive with N_MAILS mails in several packs, and the blob set of that clean run."""
    root = tmp_path_factory.mktemp("damage")
    _make_source(root / "src")
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "m1"))
    p = _import(home, root / "src")
    assert p.returncode == 0, p.stderr
    return root, set(_blobs(home))


def _clone(src_home: Path, home: Path) -> Path:
    """A copy of the archive at ``src_home`` with a copy of its medium: the imports below may write, and a
    copy of a home that shares the original's medium is refused every writing command (O11)."""
    shutil.copytree(src_home, home)
    shutil.copytree(src_home.parent / "m1", home.with_name(home.name + "-m1"))
    cfg = home / "archive.toml"
    cfg.write_text(cfg.read_text().replace(str(src_home.parent / "m1"), str(home.with_name(home.name + "-m1"))))
    return home


def _copy(archived, tmp_path: Path) -> Path:
    root, _ = archived
    return _clone(root / "home", tmp_path / "home")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused(p: subprocess.CompletedProcess, rc: int, *words: str) -> None:
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    err = " ".join(p.stderr.split())
    for w in (*words, "mailarchive restore", "db rebuild --force"):
        assert w in err, (w, err)


# ------------------------------------------------------------------------------------- H1


def test_h1_flipped_byte_in_the_catalog_header_is_refused(archived, tmp_path):
    home = _copy(archived, tmp_path)
    cat = home / "catalog.duckdb"
    data = bytearray(cat.read_bytes())
    data[4096 + 100] ^= 0x01  # inside the database header block, which every open reads
    cat.write_bytes(data)
    before = _sha(cat)
    for args in (("stats",), ("import", "eml", str(tmp_path))):
        p = mailarchive(home, *args, check=None)
        _assert_refused(p, 3, "is damaged")
    assert _sha(cat) == before  # refused, not "repaired" in place


def test_h1_flipped_byte_anywhere_gives_the_same_clear_error(archived, tmp_path):
    """One flipped byte per 256 KiB block in turn: every full read of the catalog either succeeds
    (the byte lay in unused space) or fails with the clear error, also when the damage is met by a
    query after a clean attach. A command meeting such a block exits 3 with the message, no traceback."""
    root, clean_blobs = archived
    src_home = root / "home"
    data = (src_home / "catalog.duckdb").read_bytes()
    damaged_at_query = []
    outcomes = []
    for offset in range(4096 + 100, len(data), 256 * 1024):
        home = _clone(src_home, tmp_path / f"h{offset}")
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        (home / "catalog.duckdb").write_bytes(flipped)
        stage = "attach"
        try:
            archive = Archive.open(home)
            try:
                with archive.catalog.reading() as con:
                    stage = "query"
                    tables = [r[0] for r in con.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'cat'").fetchall()]
                    for t in tables:
                        con.execute(f"SELECT * FROM cat.{t}").fetchall()
            finally:
                archive.close()
            outcomes.append((offset, "ok"))
        except CatalogError as exc:
            assert "is damaged" in str(exc) and exc.next_step is CATALOG_NEXT_STEP, str(exc)
            outcomes.append((offset, stage))
            if stage == "query":
                damaged_at_query.append(home)
    assert any(s != "ok" for _, s in outcomes), outcomes
    assert damaged_at_query, outcomes  # the file has data blocks that only a query reads
    # An import reads the tables it needs: where it meets the damage it stops with the clear error
    # (exit 3), never a traceback; it may finish when the damaged block belongs to a table it never reads.
    refused = 0
    for home in damaged_at_query:
        p = _import(home, root / "src")
        assert "Traceback" not in p.stderr, p.stderr
        if p.returncode != 0:
            _assert_refused(p, 3, "is damaged")
            refused += 1
    assert refused >= 1


# ------------------------------------------------------------------------------------- H3


def test_h3_catalog_of_another_archive_is_refused(archived, tmp_path):
    home = _copy(archived, tmp_path)
    other = tmp_path / "other"
    mailarchive(other, "init", "--medium", str(tmp_path / "m-other"))
    shutil.copy2(other / "catalog.duckdb", home / "catalog.duckdb")
    before = _sha(home / "catalog.duckdb")
    p = mailarchive(home, "stats", check=None)
    _assert_refused(p, 12, "catalog of another archive")
    p = mailarchive(home, "import", "eml", str(tmp_path / "m-other"), check=None)
    _assert_refused(p, 12, "catalog of another archive")
    assert _sha(home / "catalog.duckdb") == before


# ------------------------------------------------------------------------------------- H4


def _catalog_key_hex(home: Path) -> str:
    archive = Archive.open(home)
    try:
        return archive.catalog._key_hex
    finally:
        archive.close()


def test_h4_unencrypted_catalog_is_refused(archived, tmp_path):
    home = _copy(archived, tmp_path)
    (home / "catalog.duckdb").unlink()
    con = duckdb.connect(str(home / "catalog.duckdb"))  # a plain DuckDB file, e.g. from before encryption
    con.execute("CREATE TABLE messages (msg_id BIGINT)")
    con.close()
    before = _sha(home / "catalog.duckdb")
    p = mailarchive(home, "stats", check=None)
    _assert_refused(p, 3, "is not encrypted")
    assert _sha(home / "catalog.duckdb") == before


def test_h4_ctr_encrypted_catalog_is_refused(archived, tmp_path):
    """Encrypted with the right key but the CTR cipher (DuckDB's weak mode before its fix): refused."""
    home = _copy(archived, tmp_path)
    key_hex = _catalog_key_hex(home)
    (home / "catalog.duckdb").unlink()
    con = _connection()
    con.execute(f"ATTACH '{home / 'catalog.duckdb'}' AS c (ENCRYPTION_KEY '{key_hex}', ENCRYPTION_CIPHER 'CTR')")
    con.execute("CREATE TABLE c.messages (msg_id BIGINT)")
    con.execute("DETACH c")
    con.close()
    before = _sha(home / "catalog.duckdb")
    p = mailarchive(home, "stats", check=None)
    _assert_refused(p, 3, "not encrypted with AES-GCM")
    assert _sha(home / "catalog.duckdb") == before


# ------------------------------------------------------------------------------- A6 / H6


def _killed_with_wal(tmp_path: Path, source: Path) -> Path:
    """An archive whose import was killed right after a catalog COMMIT, before the checkpoint."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    p = _import(home, source, fault="catalog.after_commit:8")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    wal = home / "catalog.duckdb.wal"
    assert wal.exists() and wal.stat().st_size > 0  # the last commit lives only in the WAL
    return home


def test_a6_kill_with_the_commit_only_in_the_wal_replays_it(archived, tmp_path):
    root, clean_blobs = archived
    home = _killed_with_wal(tmp_path, root / "src")
    committed = json.loads(mailarchive(home, "sql", "SELECT count(*) AS n FROM runs", "--format", "json").stdout)
    assert committed[0]["n"] == 1
    blobs = _blobs(home)
    assert blobs and len(blobs) == len(set(blobs)) and set(blobs) <= clean_blobs
    v = mailarchive(home, "--json", "verify", "--full", check=None)
    report = json.loads(v.stdout)
    assert v.returncode == 0 and report["totals"]["findings"] == 0, v.stdout[-2000:]
    orphans = next(c for c in report["checks"] if c["id"] == "Q03")
    assert orphans["count"] == 0  # the replayed WAL holds the row of every pack written so far
    p = _import(home, root / "src")
    assert p.returncode == 0, p.stderr
    assert sorted(_blobs(home)) == sorted(clean_blobs)


def test_h6_wal_deleted_after_a_crash(archived, tmp_path):
    """The WAL is lost: the catalog opens at its last checkpoint (DuckDB cannot know a WAL is
    missing). The packs committed only in the WAL are listed by verify as orphans, never deleted;
    `db adopt` takes them back (P7), a rerun of the import archives the mails never committed,
    and `db rebuild --force` finds the same from the media."""
    root, clean_blobs = archived
    home = _killed_with_wal(tmp_path, root / "src")
    (home / "catalog.duckdb.wal").unlink()
    before = set(_blobs(home))
    assert before < clean_blobs  # the last commit is gone with the WAL
    v = mailarchive(home, "--json", "verify", check=None)
    report = json.loads(v.stdout)
    orphans = next(c for c in report["checks"] if c["id"] == "Q03")
    assert orphans["count"] >= 1, orphans  # the pack whose row was lost is listed, not deleted
    packs_on_medium = sorted(p.name for p in (tmp_path / "m1").rglob("*.pack"))
    adopted = mailarchive(home, "db", "adopt", json_out=True).result
    assert len(adopted["adopted"]) == orphans["count"] and not adopted["refused"], adopted
    assert set(_blobs(home)) - before and set(_blobs(home)) <= clean_blobs
    v = json.loads(mailarchive(home, "--json", "verify", check=None).stdout)
    assert {c["id"]: c["count"] for c in v["checks"]}["Q03"] == 0
    assert {c["id"]: c["count"] for c in v["checks"]}["Q10"] == 0  # their high-water marks are covered again
    p = _import(home, root / "src")
    assert p.returncode == 0, p.stderr
    after = _blobs(home)
    assert len(after) == len(set(after)) and set(after) == clean_blobs
    # nothing was deleted from the medium on the way
    assert set(packs_on_medium) <= {p.name for p in (tmp_path / "m1").rglob("*.pack")}
    # the rebuild from the media alone finds every mail, the orphan's copies included
    r = mailarchive(home, "--json", "db", "rebuild", "--force", check=None)
    assert r.returncode in (0, 1), r.stderr
    assert set(_blobs(home)) == clean_blobs
