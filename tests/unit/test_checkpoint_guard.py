"""The checkpoint guard's decisions (toolkit/catalog/checkpoint_guard.py, docs/reliability.md A6) on a real
encrypted catalog: a cut-short checkpoint is undone, a finished one is left alone, a guard cut short
itself is dropped, and a writer session leaves no guard behind."""
from __future__ import annotations

import os

import pytest

from toolkit.catalog import Catalog
from toolkit.catalog import checkpoint_guard as guard


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "catalog.duckdb", bytes(range(32)))
    cat.create({"uuid": "test"})
    for i in range(3):
        with cat.writing() as con:
            con.execute("INSERT INTO events (event_id, at_time, kind, detail) VALUES (?, now(), 'guard-test', ?)", [i, "x" * 2000])
    cat.close()
    return cat


def _events(cat: Catalog) -> int:
    with cat.reading() as con:
        return con.execute("SELECT count(*) FROM events WHERE kind = 'guard-test'").fetchone()[0]


def _save(cat: Catalog) -> bytes:
    con = cat._attach(read_only=True)
    try:
        return guard.save(cat.path, con)
    finally:
        cat._detach()


def test_a_writer_session_leaves_no_guard(catalog):
    assert not guard.guard_path(catalog.path).exists()
    with catalog.writing() as con:
        assert guard.guard_path(catalog.path).exists()  # saved while the session can checkpoint
        con.execute("INSERT INTO events (event_id, at_time, kind, detail) VALUES (10, now(), 'guard-test', 'y')")
    assert not guard.guard_path(catalog.path).exists()
    assert _events(catalog) == 4


def test_a_torn_block_under_unchanged_headers_is_put_back(catalog):
    _save(catalog)
    original = catalog.path.read_bytes()
    with open(catalog.path, "r+b") as f:  # half of the first metadata block overwritten, as a killed pwrite leaves it
        f.seek(guard.BLOCKS_START)
        f.write(os.urandom(128 * 1024))
    assert guard.explains_damage(catalog.path)
    with pytest.raises(Exception, match="middle of a checkpoint"):
        _events(catalog)
    assert guard.recover(catalog.path, wait=5) == "restored"
    assert catalog.path.read_bytes() == original
    assert not guard.guard_path(catalog.path).exists()
    assert _events(catalog) == 3


def test_a_guard_of_a_finished_checkpoint_is_dropped_and_changes_nothing(catalog):
    _save(catalog)
    with catalog.writing() as con:  # a later session checkpoints: new headers (its own guard comes and goes)
        con.execute("INSERT INTO events (event_id, at_time, kind, detail) VALUES (11, now(), 'guard-test', 'z')")
    stale = guard.guard_path(catalog.path)
    assert not stale.exists()
    _save(catalog)
    with open(catalog.path, "r+b") as f:  # headers that differ from the saved ones: the checkpoint wrote its header
        f.seek(guard.HEADERS[0])
        headers = f.read(guard.HEADERS[1] - guard.HEADERS[0])
    data = bytearray(stale.read_bytes())
    body = data[:-32]
    i = body.index(headers)
    body[i] ^= 0xFF  # as if saved before an earlier header
    import blake3

    stale.write_bytes(bytes(body) + blake3.blake3(bytes(body)).digest())
    before = catalog.path.read_bytes()
    assert not guard.explains_damage(catalog.path)
    assert guard.recover(catalog.path, wait=5) == "stale"
    assert catalog.path.read_bytes() == before and not stale.exists()
    assert _events(catalog) == 4


def test_a_guard_cut_short_is_dropped_and_changes_nothing(catalog):
    _save(catalog)
    path = guard.guard_path(catalog.path)
    path.write_bytes(path.read_bytes()[:-100])
    (path.parent / (path.name + ".tmp")).write_bytes(b"partial")
    before = catalog.path.read_bytes()
    assert guard.recover(catalog.path, wait=5) == "torn"
    assert catalog.path.read_bytes() == before
    assert not path.exists() and not (path.parent / (path.name + ".tmp")).exists()


def test_no_guard_no_change(catalog):
    before = catalog.path.read_bytes()
    assert guard.recover(catalog.path, wait=5) is None
    assert catalog.path.read_bytes() == before


_READER = """
import sys
from toolkit.catalog.connection import _connection
con = _connection()
con.execute("SET VARIABLE k = ?", [bytes(range(32)).hex()])
try:
    con.execute(f"ATTACH '{sys.argv[1]}' AS cat (ENCRYPTION_KEY getvariable('k'), ENCRYPTION_CIPHER 'GCM', READ_ONLY)")
    print("attached")
except Exception as exc:
    print("refused", exc)
"""


def test_a_reader_of_another_process_cannot_attach_beside_a_writer_whose_guard_read_the_file(catalog):
    """DuckDB locks the catalog with fcntl, and closing any descriptor of the file releases the process's
    locks on it: the guard reads the file through the writer's own descriptor, kept open until the DETACH.
    (With a descriptor of its own per read, the guard's save at the attach and its header check before each
    COMMIT let a reader attach in the middle of a writer's session: a mirror beside an import read a WAL being
    written.)"""
    import subprocess
    import sys

    from tests.corpora import REPO

    def reader() -> str:
        return subprocess.run([sys.executable, "-c", _READER, str(catalog.path)], capture_output=True, text=True,
                              cwd=REPO, timeout=60).stdout

    with catalog.writing() as con:
        assert guard.guard_path(catalog.path).exists()  # saved at the attach: the file was read
        assert reader().startswith("refused"), "a reader attached beside the writer after the guard's save"
        con.execute("INSERT INTO events (event_id, at_time, kind, detail) VALUES (99, now(), 'guard-test', 'y')")
        catalog._guard_current(con)  # the header check before a COMMIT reads the file too
        assert reader().startswith("refused"), "a reader attached beside the writer after the header check"
    assert reader().startswith("attached")  # after the session the file is free


def test_the_damage_check_of_a_failed_statement_leaves_the_writer_s_lock_in_place(catalog):
    """A statement failing with a checksum or AES-tag error is looked at against the guard (explains_damage):
    that read too goes through a descriptor kept open, or it would release DuckDB's lock on the file for the rest
    of the writer's session, as the guard's own reads did."""
    import subprocess
    import sys

    from tests.corpora import REPO

    def reader() -> str:
        return subprocess.run([sys.executable, "-c", _READER, str(catalog.path)], capture_output=True, text=True,
                              cwd=REPO, timeout=60).stdout

    with catalog.writing():
        assert guard.guard_path(catalog.path).exists()
        damage = catalog._damage(RuntimeError("block checksum mismatch"))
        assert damage is not None and "damaged" in str(damage)
        assert reader().startswith("refused"), "a reader attached beside the writer after the damage check"
    assert reader().startswith("attached")


def test_a_reader_s_damage_check_keeps_its_descriptor_until_it_lets_the_file_go(catalog):
    with catalog.reading():
        assert catalog._damage(RuntimeError("Computed AES tag differs")) is not None
        assert catalog._peek is not None
    assert catalog._peek is None
