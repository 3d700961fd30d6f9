"""``export eml --zip FILE``: one zip for auditors (RELIABILITY N7). Hostile folder names and subjects
give safe member names only; non-ASCII names carry the UTF-8 flag; RFC 2231 attachment names are
decoded for display in the manifest inside the zip; the zip is created, never replaced or followed."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import unicodedata
import zipfile
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from tests.cli import PASSWORD, mailarchive
from toolkit.archive import Archive
from toolkit.ingest import Ingest

HOSTILE = ["../../etc", "/abs", "C:\\x", "..\\..\\x", "CON", "a:b", "\u202egnp.exe", "..", ".", "INBOX/../..",
           "x/../../../y", "ctrl\x01\x1fchar\x7f", unicodedata.normalize("NFC", "Café"),
           unicodedata.normalize("NFD", "Café"), "Entwürfe/Ünter", "a" * 300]
ATTACHED = "..%2F..%2Fetc%2Fp%C3%A4sswd%01.txt"   # RFC 2231: "../../etc/pässwd\x01.txt"


def _mail(i: int) -> bytes:
    return (f"From: s{i}@example.com\nTo: r@example.com\nMessage-ID: <z{i}@t>\n"
            f"Subject: ../../z{i} CON \x1b[31m/etc/passwd\nDate: Mon, 7 Jan 2019 09:15:00 +0000\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
            f"body {i}\n--b\nContent-Type: application/octet-stream\n"
            f"Content-Disposition: attachment; filename*=UTF-8''{ATTACHED}\nContent-Transfer-Encoding: base64\n\n"
            "aGVsbG8=\n--b--\n").encode()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    base = tmp_path_factory.mktemp("zipx")
    src = base / "src"
    src.mkdir()
    for i, _ in enumerate(HOSTILE):
        (src / f"{i:02d}.eml").write_bytes(_mail(i))
    home = base / "home"
    Archive.create(home, str(base / "medium")).close()
    a = Archive.open(home, writer=True)
    Ingest(a, workers=0).run(EmlImporter(str(src)))
    with a.catalog.writing() as con:  # the folder names a hostile IMAP server or share could give
        for i, folder in enumerate(HOSTILE):
            con.execute("UPDATE sightings SET folder = ? WHERE msg_id IN "
                        "(SELECT msg_id FROM messages WHERE message_id = ?)", [folder, f"z{i}@t"])
    a.close()
    return home


def _blobs(home: Path) -> dict[str, int]:
    out = mailarchive(home, "sql", "SELECT blob_id, size FROM messages", "--format", "json")
    return {r["blob_id"]: r["size"] for r in json.loads(out.stdout)}


@pytest.mark.parametrize("layout", ["folder", "flat"])
def test_zip_package_has_safe_names_and_the_manifest_inside(home, tmp_path, layout):
    dest = tmp_path / "out" / "audit.zip"
    dest.parent.mkdir()
    r = mailarchive(home, "export", "eml", "--zip", "--layout", layout, str(dest), json_out=True).result
    assert r["written"] == len(HOSTILE) and not r["errors"]
    assert os.listdir(dest.parent) == ["audit.zip"] and dest.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(dest) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names[-2:] == ["manifest.csv", "manifest.json"] and len(set(names)) == len(names)
        for info in infos:
            n = info.filename
            assert not n.startswith("/") and "\\" not in n and ":" not in n, n
            assert not any(p in ("", ".", "..") for p in n.split("/")), n
            assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 or c == "\u202e" for c in n), n
            assert bool(info.flag_bits & 0x800) == (not n.isascii()), n
        if layout == "folder":
            assert any("Entwürfe/Ünter/" in n for n in names)
        manifest = json.loads(zf.read("manifest.json"))
        blobs = _blobs(home)
        assert manifest["complete"] and manifest["count"] == len(HOSTILE)
        for row in manifest["messages"]:
            data = zf.read(row["path"])
            assert hashlib.sha256(data).hexdigest() == row["sha256"] == row["blob_id"] and len(data) == blobs[row["blob_id"]]
            assert row["attachments"] == ["../../etc/pässwd\\x01.txt"]   # decoded, for display only
        assert zf.read("manifest.csv").decode().splitlines()[0] == "msg_id,message_id,blob_id,sha256,size,path"
    listing = subprocess.run(["unzip", "-l", str(dest)], capture_output=True, text=True)
    assert listing.returncode == 0 and f"{len(HOSTILE) + 2} files" in listing.stdout
    unpacked = tmp_path / "unpacked"
    assert subprocess.run(["unzip", "-q", str(dest), "-d", str(unpacked)]).returncode == 0
    got = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    assert got == set(names) and set(os.listdir(tmp_path)) == {"out", "unpacked"}
    if shutil.which("bsdtar"):
        assert subprocess.run(["bsdtar", "-tf", str(dest)], capture_output=True).returncode == 0


def test_zip_is_created_never_replaced_or_followed(home, tmp_path):
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"keep me")
    p = mailarchive(home, "export", "eml", "--zip", str(existing), check=2)
    assert "exists" in p.stderr and existing.read_bytes() == b"keep me"
    target = tmp_path / "target"
    target.write_bytes(b"untouched")
    link = tmp_path / "link.zip"
    link.symlink_to(target)
    mailarchive(home, "export", "eml", "--zip", str(link), check=2)
    assert target.read_bytes() == b"untouched" and link.is_symlink()
    dangling = tmp_path / "dangling.zip"
    dangling.symlink_to(tmp_path / "nowhere.zip")
    mailarchive(home, "export", "eml", "--zip", str(dangling), check=2)
    assert not (tmp_path / "nowhere.zip").exists()
    assert sorted(os.listdir(tmp_path)) == ["dangling.zip", "exists.zip", "link.zip", "target"]  # no .part left


def test_member_names_are_checked_before_writing():
    from exporters.zip_package import check_member
    from toolkit.errors import IntegrityError

    assert check_member("INBOX/Entwürfe/a.eml") == "INBOX/Entwürfe/a.eml"
    for bad in ("/abs.eml", "../x.eml", "a/../../x.eml", "a//b.eml", "./a.eml", "a\\b.eml", "C:x.eml", "a\x01.eml", ""):
        with pytest.raises(IntegrityError):
            check_member(bad)


def test_a_large_mail_is_streamed_into_the_zip_byte_identical(tmp_path):
    """A mail above the export's streaming threshold (32 MiB) goes into the zip in chunks and reads
    back byte-identical, with its ZIP64 sizes right for ``unzip``."""
    import base64

    src = tmp_path / "src"
    src.mkdir()
    body = base64.encodebytes(os.urandom(30 << 20)).replace(b"\n", b"\r\n")   # about 41 MB
    raw = b"From: a@example.com\r\nSubject: large\r\nMessage-ID: <large@x>\r\n\r\n" + body
    (src / "large.eml").write_bytes(raw)
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(src))
    dest = tmp_path / "large.zip"
    r = mailarchive(home, "export", "eml", "--zip", str(dest), json_out=True).result
    assert r["written"] == 1 and r["bytes"] == len(raw)
    with zipfile.ZipFile(dest) as zf:
        (row,) = json.loads(zf.read("manifest.json"))["messages"]
        assert row["attachments"] is None                     # too large to be parsed for display names
        with zf.open(row["path"]) as f:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        assert h.hexdigest() == hashlib.sha256(raw).hexdigest() == row["sha256"]
    assert subprocess.run(["unzip", "-tq", str(dest)], capture_output=True).returncode == 0
