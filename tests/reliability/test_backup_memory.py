"""K8 for the catalog backup and the restore from it (docs/reliability.md): ``db backup`` seals its file straight
into the medium's temp file and checks it back front to back, and ``restore`` checks each backup file a batch at
a time and loads its rows a record batch per transaction, so neither holds a backup file, its plaintext or its
rows whole (1M mails: 536 → ~340 MB for ``db backup --full``, 1,345 → ~280 MB for ``restore``; bench/RESULTS.md).
The files are the same bytes as before (tests/unit/test_seal_stream.py)."""
from __future__ import annotations

import tracemalloc

import pytest

import importers
import toolkit
from media_tools import backup, restore as restoring
from media_tools.mirror import mirror
from tests.corpora import REPO
from toolkit.catalog import snapshots
from toolkit.errors import IntegrityError
from toolkit.storage import open_storage

PASSWORD = "correct horse battery staple 2018"
#: rows of filler events: 38 MB of hex text, a backup file of ~20 MB that the memory bounds below compare with
#: (what the streamed seal and open hold is ~5 MB whatever the file: a few pieces of 1 MiB)
FILLER_ROWS = 100_000
BATCH_ROWS = 2_000


def _small_batches(monkeypatch) -> None:
    batches = snapshots.select_batches
    monkeypatch.setattr(snapshots, "select_batches", lambda *a: batches(*a, rows=BATCH_ROWS))


@pytest.fixture(scope="module")
def stuffed(tmp_path_factory):
    """An archive of a sample mbox whose catalog holds 38 MB of hard-to-compress events, backed up (full) and
    mirrored: (home, key backup path, mirror path)."""
    root = tmp_path_factory.mktemp("bkmem")
    home, kb = root / "home", root / "kb.txt"
    toolkit.init_archive(home, password=PASSWORD, key_backup=kb)
    with toolkit.open_archive(home, writer=True) as archive:
        toolkit.import_mail(archive, importers.MboxImporter(str(REPO / "sample_data" / "mbox" / "lists.mbox")), workers=0)
        with archive.catalog.writing() as con:
            hexes = " || ".join(f"md5((i * 13 + {k})::VARCHAR)" for k in range(12))
            con.execute(f"INSERT INTO events (event_id, at_time, kind, detail) "
                        f"SELECT 1000000000 + i, now(), 'filler', {hexes} FROM range({FILLER_ROWS}) t(i)")
        with pytest.MonkeyPatch.context() as mp:
            _small_batches(mp)
            backup.create_backup(archive, "full")
            mirror(archive, open_storage(str(root / "mirror")))
    return home, kb, root / "mirror"


def test_db_backup_seals_and_checks_back_without_holding_the_file(stuffed, monkeypatch):
    """Beyond the compressed parts the build holds, sealing, writing and the read-back check take less than a third
    of the file's size of Python memory (tracemalloc). Before, the file was sealed in memory (the payload, the ciphertext
    and two copies of it) and read back whole (the sealed bytes, then the opened payload): over twice its size."""
    home = stuffed[0]
    _small_batches(monkeypatch)
    built = {}
    build = backup.build_backup_streamed

    def build_and_mark(*args):
        out = build(*args)
        built["held"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return out

    monkeypatch.setattr(backup, "build_backup_streamed", build_and_mark)
    with toolkit.open_archive(home, writer=True) as archive:
        tracemalloc.start()
        try:
            result = backup.create_backup(archive, "full")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert backup.verified_backups(archive)[-1]["name"] == result.name
    assert result.bytes > 16 << 20 and result.tables["events"]["stored"] >= FILLER_ROWS
    assert peak - built["held"] < result.bytes // 3, (peak - built["held"], result.bytes)


def test_restore_holds_no_backup_file_whole_and_loads_by_transactions_of_bounded_rows(stuffed, tmp_path, monkeypatch):
    """The restore's check and load hold less than a third of a backup file of Python memory (before: the sealed file,
    its plaintext and the decompressed payload, then every row in Arrow), and its rows are inserted in many
    transactions (before: one, whose uncommitted rows DuckDB held in memory: 1,345 MB at a million mails)."""
    home, kb, dest = stuffed
    size = max(e.size for e in open_storage(str(dest)).list("") if e.name.endswith("-full.dbk"))
    assert size > 16 << 20
    transactions = set()
    insert = snapshots.insert_rows

    def insert_and_note(con, table, rows):
        transactions.add(con.execute("SELECT txid_current()").fetchone()[0])
        insert(con, table, rows)

    monkeypatch.setattr(snapshots, "insert_rows", insert_and_note)
    # a transaction per record batch of the file (the default groups two of db backup's batches of 65,536 rows)
    monkeypatch.setattr(restoring, "RESTORE_ROWS_PER_TRANSACTION", BATCH_ROWS, raising=False)
    tracemalloc.start()
    try:
        r = restoring.restore(open_storage(str(dest)), kb.read_text(), PASSWORD.encode(), tmp_path / "restored")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status == "restored" and r.messages > 0
    assert peak < size // 3, (peak, size)
    assert len(transactions) >= FILLER_ROWS // BATCH_ROWS
    with toolkit.open_archive(tmp_path / "restored") as a, a.catalog.reading() as con:
        assert con.execute("SELECT count(*) FROM events WHERE kind = 'filler'").fetchone()[0] == FILLER_ROWS


def test_a_backup_changed_after_its_check_fails_the_restore_and_leaves_no_home(stuffed, tmp_path, monkeypatch):
    """The rows are read again when loaded, each file's tag checked at its end: a file changed between the check
    and the load (a byte of its last part's ciphertext) fails the restore — with the authentication error, not the
    damage the changed plaintext shows first — and the home built so far is removed, never put in place."""
    home, kb, dest = stuffed
    mirrored = tmp_path / "mirror"
    import shutil

    shutil.copytree(dest, mirrored)
    check = restoring.check_backup_file

    def check_then_change(storage, path, key, uuid):
        checked = check(storage, path, key, uuid)
        victim = mirrored / path
        data = bytearray(victim.read_bytes())
        data[-40] ^= 0x01
        victim.write_bytes(bytes(data))
        return checked

    monkeypatch.setattr(restoring, "check_backup_file", check_then_change)
    with pytest.raises(IntegrityError, match="authentication failed"):
        restoring.restore(open_storage(str(mirrored)), kb.read_text(), PASSWORD.encode(), tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert not list(tmp_path.glob(".restored.restoring-*"))


def test_a_backup_sealed_whole_is_checked_and_read_by_the_streamed_reader(stuffed, tmp_path):
    """A file sealed whole (``encode_backup``, ``crypto.seal_blob``: backups written before the streamed seal) is
    checked and read back a batch at a time with the same header and rows as the whole-file reader gives."""
    import datetime as dt

    now = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)
    with toolkit.open_archive(stuffed[0]) as archive:
        name, meta, parts = backup.build_backup(archive, "full", now, None)
        old = backup.encode_backup(archive.key, archive.uuid, name, meta, parts)
        storage = open_storage(str(tmp_path))
        storage.put(name, old)
        whole = backup.decode_backup(archive.key, archive.uuid, name, old)
        checked = backup.check_backup_file(storage, name, archive.key, archive.uuid)
    assert checked.meta == whole.meta and checked.kind == "full"
    rows: dict[str, int] = {}
    for info, table in checked.part_batches():
        rows[info["table"]] = rows.get(info["table"], 0) + table.num_rows
    assert rows == {info["table"]: table.num_rows for info, table in whole.parts if table.num_rows}
    assert rows["events"] >= FILLER_ROWS
