"""docs/reliability.md A12: a writer session ends with its last checkpoint done, or says that it could not.

A writer session under a DuckDB memory limit (``Catalog.use_memory_limit``: an import, retention, a purge) ends
with the DETACH that checkpoints its commits into the file. That checkpoint can need more memory than the
commits did: it rewrites every row group the session updated or deleted from (a purge of 250,000 of a million
mails needed 72-80 MiB under its 64 MiB limit). DuckDB then detaches all the same and raises "CHECKPOINT during
DETACH failed"; the session swallowed that, so a purge that exited 0 left ``catalog.duckdb.wal`` and
``catalog.duckdb.guard`` behind (the next writer replayed them). Here the same happens at a small scale: 100,000
messages rows, then a session of ten commits under 4 MiB, each moving three quarters of 10,000 rows to another
pack and deleting the rest, as a purge's pack switches do; its checkpoint needs more than 4 MiB.
"""
from __future__ import annotations

import pytest

from toolkit import notices
from toolkit.catalog import Catalog, connection

ROWS = 100_000
COMMITS = 10
LIMIT = 4 << 20


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "catalog.duckdb", bytes(range(32)))
    cat.create({"uuid": "00000000-0000-0000-0000-000000000000"})
    with cat.writing() as con:  # written and checkpointed without a limit
        con.execute(
            'INSERT INTO messages (msg_id, blob_id, dedup_key, pack_id, "offset", length, size, csize, subject, '
            "spam, id_conflict, archived_at) SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR), md5(i::VARCHAR), "
            "'p' || (i // 5000), i * 100, 100, 200, 100, 'subject ' || i, false, false, now() FROM range(1, ? + 1) t(i)",
            [ROWS])
    yield cat
    cat.close()


def _purge_like_session(cat: Catalog) -> None:
    step = ROWS // COMMITS
    with cat.transactions() as transaction:
        for lo in range(0, ROWS, step):
            with transaction() as con:
                con.execute("""UPDATE messages SET pack_id = pack_id || 'n', "offset" = "offset" + 1 """
                            "WHERE msg_id > ? AND msg_id <= ? AND msg_id % 4 <> 0", [lo, lo + step])
                con.execute("DELETE FROM messages WHERE msg_id > ? AND msg_id <= ? AND msg_id % 4 = 0", [lo, lo + step])


def _leftovers(cat: Catalog) -> list[str]:
    return sorted(p.name for p in cat.path.parent.iterdir() if p.name.endswith((".wal", ".guard")))


def _rows(cat: Catalog) -> tuple[int, int]:
    with cat.reading() as con:
        return con.execute("SELECT count(*), count(*) FILTER (WHERE pack_id LIKE '%n') FROM messages").fetchone()


def test_a12_a_last_checkpoint_beyond_the_session_s_memory_limit_is_done_under_a_lifted_one(catalog):
    given = len(notices.GIVEN)
    catalog.use_memory_limit(LIMIT)
    _purge_like_session(catalog)
    assert _leftovers(catalog) == []  # main: ['catalog.duckdb.guard', 'catalog.duckdb.wal'], silently
    # the case is the one meant: the checkpoint was refused under the session's limit and done under twice it
    assert catalog.checkpoint_lifted == 2 * LIMIT
    assert catalog.checkpoint_left is None and len(notices.GIVEN) == given
    assert catalog.memory_limit == LIMIT  # the session's own limit again for the next session
    assert _rows(catalog) == (ROWS * 3 // 4, ROWS * 3 // 4)


def test_a12_a_last_checkpoint_that_cannot_be_done_is_a_warning_and_the_next_writer_completes_it(catalog,
                                                                                                  monkeypatch):
    monkeypatch.setattr(connection, "LIFTED_MEMORY_LIMITS", ())  # no lifted limit to try
    warned: list[str] = []
    monkeypatch.setitem(notices._SINK, "warn", warned.append)
    catalog.use_memory_limit(LIMIT)
    _purge_like_session(catalog)
    assert len(warned) == 1 and catalog.checkpoint_left == warned[0]  # main: no warning at all
    assert "without its last checkpoint" in warned[0] and "catalog.duckdb.wal" in warned[0]
    assert bytes(range(32)).hex()[:16] not in warned[0]
    assert _leftovers(catalog) == ["catalog.duckdb.guard", "catalog.duckdb.wal"]
    catalog.use_memory_limit(None)
    with catalog.writing():  # the next writer: replays the WAL and checkpoints it
        pass
    assert _leftovers(catalog) == [] and catalog.guard_recovery == "restored"
    assert _rows(catalog) == (ROWS * 3 // 4, ROWS * 3 // 4)


def test_a12_the_command_line_shows_the_core_s_warnings_on_stderr(tmp_path, capsys, monkeypatch):
    from click.testing import CliRunner

    from toolkit.cli.main import cli

    monkeypatch.setitem(notices._SINK, "warn", None)
    CliRunner().invoke(cli, ["--archive", str(tmp_path / "none"), "--quiet", "stats"])
    notices.warn("the catalog was left without its last checkpoint")
    assert "warning: the catalog was left without its last checkpoint" in capsys.readouterr().err


def test_a12_a_commit_whose_automatic_checkpoint_the_limit_refuses_is_kept_and_the_session_goes_on(catalog):
    """DuckDB checkpoints at a COMMIT once the WAL passes ``checkpoint_threshold`` (16 MB by default: a purge of
    more than ~300,000 of a million mails). The commit is written to the WAL first; when that checkpoint then
    fails, DuckDB says "Transaction COMMIT succeeded and is durable, but the autocheckpoint failed" and the
    attached catalog is invalidated. The commit was reported as failed ("nothing of it was committed", or a full
    disk), the purge stopped, and its rerun met the same WAL and the same refused checkpoint at its first commit.
    Here the threshold is 1 MB, so that several of the session's commits end in that checkpoint."""
    given = len(notices.GIVEN)
    catalog.use_memory_limit(LIMIT)
    commits = 0
    with catalog.transactions() as transaction:
        with transaction() as con:
            con.execute("SET checkpoint_threshold = '1MB'")
        for lo in range(0, ROWS, 2000):
            with transaction() as con:  # main: CatalogError at the 9th to 41st commit, which was kept all the same
                con.execute("""UPDATE messages SET pack_id = pack_id || 'n' WHERE msg_id > ? AND msg_id <= ? """
                            "AND msg_id % 4 <> 0", [lo, lo + 2000])
                con.execute("DELETE FROM messages WHERE msg_id > ? AND msg_id <= ? AND msg_id % 4 = 0", [lo, lo + 2000])
            commits += 1
    assert commits == ROWS // 2000
    assert catalog.checkpoint_lifted == 2 * LIMIT  # the case is the one meant: a checkpoint was refused, then done
    assert _leftovers(catalog) == [] and len(notices.GIVEN) == given
    assert _rows(catalog) == (ROWS * 3 // 4, ROWS * 3 // 4)
