"""The archive's hash choices cannot drift (issue 15; docs/formats.md "Hashes"; toolkit/hashes.py).

Blob id = SHA-256 of the mail's bytes (evidence bundles are checked with sha256sum); the dedup body
hash and every pack / catalog-backup checksum = BLAKE3. Each value is computed here independently,
with hashlib and blake3 over bytes the test reads itself, and compared with what the toolkit
stores: in memory (prepare, PackWriter, Storage) and in a real archive's catalog after an import
and a catalog backup through the CLI.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from uuid import UUID

import blake3

from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.catalog import backups as backup_rows, media_rows
from toolkit.pack import PackReader, PackWriter, pack_key
from toolkit.prepare import prepare
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
UUID1 = UUID("00000000-0000-4000-8000-000000000001")
BODY = b"Hello  \r\nWorld\t\r\n\r\n-- \r\nsig\r\n\r\n"
NORMALISED = b"Hello\nWorld\n\n--\nsig"          # by the rules, written out by hand
MAIL = b"From: a@example.org\r\nMessage-ID: <pin-1@example.org>\r\nSubject: pin\r\n\r\n" + BODY


def _dedup_key(mid: bytes, body: bytes) -> bytes:
    return hashlib.sha256(b"mailarchive-dedup-v2\0mid\0" + mid + b"\0" + blake3.blake3(body).digest()).digest()


def test_prepare_blob_id_is_sha256_and_body_hash_is_blake3():
    pack_id = b"\x22" * 16
    p = prepare(MAIL, pack_key(KEY, UUID1, pack_id), UUID1, pack_id)
    assert p.blob_id == hashlib.sha256(MAIL).hexdigest()
    assert p.meta.body_hash == blake3.blake3(NORMALISED).digest()
    assert p.meta.dedup_key == _dedup_key(b"pin-1@example.org", NORMALISED)


def test_pack_and_storage_checksums_are_blake3(tmp_path):
    storage = LocalStorage(tmp_path / "medium")
    w = PackWriter(storage, KEY, UUID1)
    entry = w.add(hashlib.sha256(MAIL).digest(), MAIL)
    info = w.seal()
    raw = (storage.root / info.name).read_bytes()
    assert info.blake3 == blake3.blake3(raw).digest()
    assert storage.blake3(info.name) == (blake3.blake3(raw).hexdigest(), len(raw))
    reader = PackReader(storage, info.name, KEY, UUID1)
    assert [err for _, err in reader.verify_all()] == [None]
    assert reader.file_blake3 == blake3.blake3(raw).digest()
    assert entry.blob_id == hashlib.sha256(MAIL).digest()


def test_an_archive_stores_these_hashes(tmp_path):
    src, home, medium = tmp_path / "src", tmp_path / "home", tmp_path / "m1"
    src.mkdir()
    (src / "1.eml").write_bytes(MAIL)
    mailarchive(home, "init", "--medium", str(medium))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "db", "backup")
    archive = Archive.open(home)
    try:
        with archive.catalog.reading() as con:
            (blob, key), = con.execute("SELECT blob_id, dedup_key FROM messages").fetchall()
            packs = media_rows.all_packs(con)
            stored_backups = backup_rows.backup_hashes(con)
    finally:
        archive.close()
    assert blob == hashlib.sha256(MAIL).hexdigest()
    assert key == _dedup_key(b"pin-1@example.org", NORMALISED).hex()
    assert len(packs) == 1
    for medium_id, name, nbytes, checksum in packs:
        raw = (medium / name).read_bytes()
        assert (nbytes, checksum) == (len(raw), blake3.blake3(raw).hexdigest())
    assert len(stored_backups) == 1
    for name, checksum in stored_backups.items():
        assert checksum == blake3.blake3((medium / "db-backups" / Path(name).name).read_bytes()).hexdigest(), name
    assert json.loads((medium / "MEDIUM.json").read_text())["format"] == 2
