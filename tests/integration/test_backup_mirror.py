"""Catalog backups and the verified mirror (docs/reliability.md Q1, A7, E3, B6).

The product flow runs the real CLI against the real Samba share; the
ENOSPC and backup-verification faults run in-process with the storage
layer made to fail.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from media_tools import backup as bk
from media_tools.mirror import mirror
from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.catalog import Catalog
from toolkit import crypto
from toolkit.errors import IntegrityError, StorageError, StorageFullError
from toolkit.storage import local as local_storage, open_storage

SAMPLE = REPO / "sample_data" / "eml"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _exported(out: Path) -> set[str]:
    rows = json.loads((out / "manifest.json").read_text())["messages"]
    for r in rows:
        assert _sha(out / r["path"]) == r["sha256"]
    return {r["sha256"] for r in rows}


def write_new_mails(root: Path, n: int, tag: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{tag}-{i}.eml").write_bytes(
            (
                f"From: New Sender <new{i}@example.org>\r\nTo: someone@example.com\r\n"
                f"Subject: {tag} message {i}\r\nDate: Mon, 3 Jun 2024 10:0{i}:00 +0000\r\n"
                f"Message-ID: <{tag}-{i}@example.org>\r\n\r\nBody {tag} {i}\r\n"
            ).encode()
        )
    return root


def _make_archive(tmp_path: Path, source: Path, **ingest_options) -> Path:
    """HOME at tmp_path/home with medium tmp_path/m1 (made in-process: no key backup, no Argon2 cost),
    then ``source`` imported into it (a second call imports into the same archive)."""
    from importers.eml import EmlImporter
    from toolkit.ingest import ingest

    home = tmp_path / "home"
    if not home.exists():
        Archive.create(home, str(tmp_path / "m1")).close()
    with Archive.open(home, writer=True) as a:
        assert ingest(a, EmlImporter(str(source)), **ingest_options).archived > 0
    return home


def _stats_core(s: dict) -> dict:
    return {k: s[k] for k in ("uuid", "messages", "message_bytes", "packs", "pack_bytes", "recipients", "sightings", "runs")}


@pytest.mark.samba
def _batches(home: Path) -> list:
    with Archive.open(home) as a, a.catalog.reading() as con:
        return con.execute(
            "SELECT batch_id, first_msg_id, last_msg_id, leaf_count, merkle_root, token, status, manifest_name "
            "FROM stamp_batches ORDER BY batch_id").fetchall()


@pytest.mark.samba
def test_product_flow_backup_mirror_restore_smb(tmp_path, samba, smb_location, tsa_ok):
    """Q1 + acceptance 1 and 2: local archive → import → timestamp → full backup → mirror to SMB → import more →
    incremental backup → mirror (only new files copied) → home and medium deleted → restore → same mail, same stamps."""
    home, medium, kb = tmp_path / "home", tmp_path / "medium-1", tmp_path / "kb.txt"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(kb))
    imp = mailarchive(home, "import", "eml", str(SAMPLE), json_out=True).result
    assert imp["archived"] > 30 and imp["errors"] == 0
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    mailarchive(home, "timestamp", "run", "--all")

    full = mailarchive(home, "db", "backup", "--full", json_out=True).result
    assert full["kind"] == "full" and full["tables"]["messages"]["rows"] == imp["archived"]
    m1 = mailarchive(home, "mirror", smb_location, json_out=True).result
    assert m1["complete"] and not m1["differing"] and not m1["missing_locally"]
    assert any(f.startswith("medium-1/stamps/") and f.endswith(".manifest") for f in m1["copied_files"])
    assert set(m1["copied_files"]) >= {"medium-1/MEDIUM.json", f"medium-1/{full['name']}",
                                        f"medium-1/{full['config_snapshot']}"}
    first_packs = {f for f in m1["copied_files"] if "/packs/" in f}
    batches = _batches(home)
    assert batches and all(b[6] == "stamped" for b in batches)
    assert len(first_packs) == 1

    # acceptance 2: import more, incremental, mirror again: only the new pack and backup are copied
    imp2 = mailarchive(home, "import", "eml", str(write_new_mails(tmp_path / "new", 3, "incr")), json_out=True).result
    assert imp2["archived"] == 3
    incr = mailarchive(home, "db", "backup", "--incremental", json_out=True).result
    assert incr["kind"] == "incremental" and incr["chain"] == [full["name"], incr["name"]]
    assert incr["tables"]["messages"] == {"mode": "append", "rows": 3, "total": imp["archived"] + 3}
    m2 = mailarchive(home, "mirror", smb_location, json_out=True).result
    new_packs = {f for f in m2["copied_files"] if "/packs/" in f}
    assert len(new_packs) == 1 and not new_packs & first_packs
    (new_pack,) = new_packs
    new_mark = f"medium-1/marks/pack-{new_pack.rsplit('/', 1)[-1].removesuffix('.pack')}.mark"  # H2: marks travel
    assert set(m2["copied_files"]) == new_packs | {
        new_mark, f"medium-1/{incr['name']}", f"medium-1/{incr['config_snapshot']}"}
    assert m2["already_present"] == len(m1["copied_files"]) - 1  # the old config snapshot is not re-sent
    assert m2["newest_backup"] == incr["name"]

    before = _stats_core(mailarchive(home, "stats", json_out=True).result)
    out1 = tmp_path / "export-before"
    mailarchive(home, "export", "eml", str(out1))
    shas_before = _exported(out1)
    assert len(shas_before) == before["messages"]

    shutil.rmtree(home)
    shutil.rmtree(medium)
    new_home = tmp_path / "restored"
    r = mailarchive(tmp_path / "unused", "restore", "--from", smb_location, "--key-backup", str(kb),
                    "--archive", str(new_home), json_out=True).result
    assert r["status"] == "restored" and r["losses"] == [] and r["refused_backups"] == []
    assert r["chain"] == [full["name"], incr["name"]]
    assert r["packs_ok"] == r["packs"] == 2 and not r["warnings"]
    assert all(m["location"].startswith(smb_location) for m in r["media"])
    assert oct((new_home / "key").stat().st_mode & 0o777) == "0o600"

    after = _stats_core(mailarchive(new_home, "stats", json_out=True).result)
    assert after == before
    out2 = tmp_path / "export-after"
    mailarchive(new_home, "export", "eml", str(out2))
    assert _exported(out2) == shas_before
    assert _batches(new_home) == batches  # the stamps survive the restore
    mailarchive(new_home, "verify", "--full")  # exit 0: packs, records, Merkle roots, tokens, manifests


@pytest.mark.samba
def test_mirror_killed_then_rerun_completes_smb(tmp_path, samba, smb_location):
    """A7: kill -9 right after the pack copy; DEST then holds no backup and no state; the rerun completes."""
    home = _make_archive(tmp_path, SAMPLE / "2019")
    with Archive.open(home, writer=True) as a:
        bk.create_backup(a, "full")
    killed = mailarchive(home, "mirror", smb_location, env={"MAILARCHIVE_FAULT": "mirror_after_copy:2"}, check=None)
    assert killed.returncode == -9
    dest = samba.share_dir / smb_location.rsplit("/", 1)[1]
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert any("/packs/" in n for n in names)
    assert not any("db-backups" in n for n in names) and "MIRROR.json" not in names  # objects first, DB last
    again = mailarchive(home, "mirror", smb_location, json_out=True).result
    assert again["complete"] and again["already_present"] == 2
    assert {f.split("/")[1] for f in again["copied_files"]} == {"marks", "db-backups", "config"}  # marks after packs
    assert not [n for n in (p.name for p in dest.rglob("*")) if n.endswith(".tmp")]


def test_local_pack_missing_or_corrupt_is_not_propagated(tmp_path):
    """Q4: a local pack gone missing is reported and its DEST copy kept even with --delete;
    a corrupt local pack (its BLAKE3 checksum differs from the catalog) is reported and not copied."""
    medium, dest = tmp_path / "m1", tmp_path / "dest"
    home = _make_archive(tmp_path, SAMPLE / "2019")
    with Archive.open(home) as a:
        assert mirror(a, open_storage(str(dest))).complete
    (p1,) = medium.glob("packs/*/*.pack")
    copy1 = dest / "medium-1" / p1.relative_to(medium)
    sha1 = _sha(copy1)
    _make_archive(tmp_path, SAMPLE / "2020")
    (p2,) = set(medium.glob("packs/*/*.pack")) - {p1}
    p1.unlink()
    data = bytearray(p2.read_bytes())
    data[100] ^= 0xFF
    p2.write_bytes(bytes(data))
    r = mailarchive(home, "mirror", str(dest), "--delete", "--verify", json_out=True, check=1).result
    assert [x["file"] for x in r["missing_locally"]] == [f"medium-1/{p1.relative_to(medium).as_posix()}"]
    assert [x["file"] for x in r["corrupt_locally"]] == [f"medium-1/{p2.relative_to(medium).as_posix()}"]
    # No pack is copied; only the catalog backup the mirror made first (the catalog changed) and its config snapshot.
    assert r["deleted"] == [] and r["backup_made"] and all("/db-backups/" in f or "/config/" in f for f in r["copied_files"])
    assert _sha(copy1) == sha1  # the DEST copy of the lost pack is untouched
    assert not (dest / "medium-1" / p2.relative_to(medium)).exists()
    assert not [p for p in dest.rglob("*.tmp")]


# ------------------------------------------------------------------ in-process faults


@pytest.fixture
def archive_with_mail(tmp_path):
    return _make_archive(tmp_path, SAMPLE)


def test_enospc_during_backup_keeps_previous_backup(archive_with_mail, tmp_path, monkeypatch):
    """E3: ENOSPC while writing a backup: no file, no row, the previous verified backup intact and newest."""
    medium = tmp_path / "m1"
    with Archive.open(archive_with_mail, writer=True) as a:
        first = bk.create_backup(a, "full")
        first_bytes = (medium / first.name).read_bytes()

        real_init = local_storage._LocalWriter.__init__

        class FullDisk:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, name):
                return getattr(self.f, name)

        def init(self, storage, name):
            real_init(self, storage, name)
            if name.startswith("db-backups/"):
                self._f = FullDisk(self._f)

        monkeypatch.setattr(local_storage._LocalWriter, "__init__", init)
        with pytest.raises(StorageFullError):
            bk.create_backup(a, "full", keep=1)
        monkeypatch.setattr(local_storage._LocalWriter, "__init__", real_init)

        assert [f"db-backups/{p.name}" for p in (medium / "db-backups").iterdir()] == [first.name]  # no temp file
        assert (medium / first.name).read_bytes() == first_bytes
        history = bk.verified_backups(a)
        assert [b["name"] for b in history] == [first.name]
        assert bk.read_backup(a.storage(1), first.name, a.key, a.uuid).kind == "full"

        # space freed: an incremental with --keep 1 must not delete the full it builds on ...
        incr = bk.create_backup(a, None, keep=1)
        assert incr.kind == "incremental" and incr.deleted == []
        # ... and a newer verified full lets retention delete the older chain
        second = bk.create_backup(a, "full", keep=1)
        assert sorted(second.deleted) == sorted([first.name, incr.name])
        assert [f"db-backups/{p.name}" for p in (medium / "db-backups").iterdir()] == [second.name]


def test_backup_failing_readback_is_removed(archive_with_mail, tmp_path, monkeypatch):
    """B6 at write time: a backup that reads back truncated is deleted and never recorded."""
    with Archive.open(archive_with_mail, writer=True) as a:
        real_open = local_storage.LocalStorage.open_read

        def short_open(self, name):  # the read-back reads the file front to back through open_read
            f = real_open(self, name)
            if not name.startswith("db-backups/"):
                return f
            with f:
                return io.BytesIO(f.read()[:-10])

        monkeypatch.setattr(local_storage.LocalStorage, "open_read", short_open)
        with pytest.raises(IntegrityError):
            bk.create_backup(a, "full")
        monkeypatch.undo()
        assert not list((tmp_path / "m1" / "db-backups").iterdir())
        assert bk.verified_backups(a) == []


def test_incremental_carries_updates_of_old_rows(archive_with_mail, tmp_path):
    """Incremental scheme: UPDATEs of older rows (stamping sets messages.batch_id, packs move) survive the chain."""
    with Archive.open(archive_with_mail, writer=True) as a:
        full = bk.create_backup(a, "full")
        with a.catalog.writing() as con:
            con.execute("UPDATE messages SET batch_id = 7 WHERE msg_id <= 5")
            con.execute("INSERT INTO stamp_batches (batch_id, first_msg_id, last_msg_id, leaf_count, status) VALUES (7, 1, 5, 5, 'stamped')")
            con.execute("UPDATE packs SET created_at = created_at + INTERVAL 1 SECOND")
        incr = bk.create_backup(a, "incremental")
        assert incr.tables["messages"]["mode"] == "patch"
        assert incr.tables["packs"]["mode"] == "full"
        assert incr.tables["recipients"]["mode"] == "unchanged"
        chain = [bk.read_backup(a.storage(1), n, a.key, a.uuid) for n in (full.name, incr.name)]
        with a.catalog.reading() as con:
            live = con.execute("SELECT msg_id, batch_id, pack_id FROM messages ORDER BY msg_id").fetchall()
        target = Catalog(tmp_path / "restored.duckdb", crypto.derive_key(a.key, a.uuid, "catalog"))
        target.migrate()
        with target.writing() as con:
            bk.apply_backups(con, chain)
        with target.reading() as con:
            assert con.execute("SELECT msg_id, batch_id, pack_id FROM messages ORDER BY msg_id").fetchall() == live
            assert con.execute("SELECT batch_id, leaf_count FROM stamp_batches").fetchall() == [(7, 5)]
        target.close()
        with pytest.raises(IntegrityError):  # the incremental alone is not a restore chain
            with target.writing() as con:
                bk.apply_backups(con, chain[1:])
        target.close()


@pytest.mark.parametrize("err, raised", [(errno.ENOSPC, StorageFullError), (errno.EROFS, StorageError)])
def test_Q5_mirror_share_full_or_read_only_midway_then_resumes(tmp_path, monkeypatch, err, raised):
    """Q5: DEST fails after one pack: the local archive is untouched, DEST holds no partial file and no
    MIRROR.json claiming a mirror, and the next run copies only what is missing."""
    home = _make_archive(tmp_path, SAMPLE, pack_target=4000)  # several packs from the sample mails
    dest = tmp_path / "mirror"
    local = {p: _sha(p) for p in (tmp_path / "m1").rglob("*") if p.is_file()}
    real_init = local_storage._LocalWriter.__init__
    fits = {"packs": 1}

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(err, errno.errorcode[err])

        def __getattr__(self, name):
            return getattr(self.f, name)

    def init(self, storage, name):
        real_init(self, storage, name)
        if Path(storage.root) == dest and name.endswith(".pack"):
            if fits["packs"] <= 0:
                self._f = Failing(self._f)
            fits["packs"] -= 1

    with Archive.open(home, writer=True) as a:
        with a.catalog.reading() as con:
            packs = con.execute("SELECT count(*) FROM packs").fetchone()[0]
        assert packs >= 3
        monkeypatch.setattr(local_storage._LocalWriter, "__init__", init)
        with pytest.raises(raised) as failure:
            mirror(a, open_storage(str(dest)))
        monkeypatch.setattr(local_storage._LocalWriter, "__init__", real_init)
        assert str(dest) in str(failure.value) and ".pack" in str(failure.value)
        assert not (dest / "MIRROR.json").exists()
        assert not [p for p in dest.rglob("*") if p.name.endswith(".tmp")]
        assert len(list(dest.rglob("*.pack"))) == 1
        assert {p: _sha(p) for p in (tmp_path / "m1").rglob("*") if p.is_file()} == local
        again = mirror(a, open_storage(str(dest)))
        assert again.complete and not again.problems
        assert sum(1 for c in again.copied if c.endswith(".pack")) == packs - 1
    assert len(list(dest.rglob("*.pack"))) == packs and (dest / "MIRROR.json").exists()
