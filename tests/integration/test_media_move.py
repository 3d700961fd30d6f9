"""`media move` and `restore --media-to`: a restored archive's media come back from the mirror share
onto local disk, every copy verified, resumable, the mirror left untouched."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _exported(home: Path, dest: Path) -> list[str]:
    mailarchive(home, "export", "eml", str(dest))
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*.eml"))


@pytest.fixture
def mirrored(tmp_path, samba, smb_location):
    src = tmp_path / "mails"
    src.mkdir()
    for i in range(20):
        (src / f"{i}.eml").write_text(f"From: a@example.com\nSubject: mv{i}\nMessage-ID: <mv{i}@x>\n\n" + f"text {i}\n" * 30)
    home = tmp_path / "home"
    kb = tmp_path / "kb.txt"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(kb))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "db", "backup", "--full")
    mailarchive(home, "mirror", smb_location)
    shas = _exported(home, tmp_path / "export-before")
    mirror_dir = samba.share_dir / smb_location.rstrip("/").rpartition("/")[2]
    return {"kb": kb, "url": smb_location, "dir": mirror_dir, "shas": shas}


def _media(home: Path) -> list[dict]:
    return mailarchive(home, "media", "list", "--no-check", json_out=True).result["media"]


@pytest.mark.samba
def test_media_move_brings_a_restored_medium_home(tmp_path, mirrored):
    home = tmp_path / "restored"
    mailarchive(home, "restore", "--from", mirrored["url"], "--key-backup", str(mirrored["kb"]))
    m = _media(home)[0]
    assert m["id"] == 1 and m["location"].startswith(mirrored["url"]) and m["state"] == "active"
    at_mirror = _files(mirrored["dir"] / "medium-1")

    local = tmp_path / "local-m1"
    # an interrupted earlier move left one good copy and a temporary file: both are dealt with
    pack = next(n for n in at_mirror if n.endswith(".pack"))
    (local / pack).parent.mkdir(parents=True)
    shutil.copyfile(mirrored["dir"] / "medium-1" / pack, local / pack)
    (local / (pack + ".tmp")).write_bytes(b"half a copy")
    r = mailarchive(home, "media", "move", "1", str(local), json_out=True).result
    assert r["already_there"] == 1 and r["copied"] == len(at_mirror) - 1 and r["files"] == len(at_mirror)
    m = _media(home)[0]
    assert m["location"] == str(local) and m["state"] == "active"
    moved = {k: v for k, v in _files(local).items() if not k.endswith(".tmp")}
    assert moved == at_mirror                                          # every file, same bytes
    assert _files(mirrored["dir"] / "medium-1") == at_mirror           # the old location untouched
    assert _exported(home, tmp_path / "export-after") == mirrored["shas"]
    mailarchive(home, "verify", "--full")
    # new mail goes to the moved medium
    extra = tmp_path / "extra.eml"
    extra.write_text("From: b@example.com\nSubject: after the move\nMessage-ID: <after@x>\n\nnew\n")
    mailarchive(home, "import", "eml", str(extra))
    assert len([n for n in _files(local) if n.endswith(".pack")]) == len([n for n in at_mirror if n.endswith(".pack")]) + 1
    assert _files(mirrored["dir"] / "medium-1") == at_mirror


@pytest.mark.samba
def test_media_move_refuses_a_different_file_and_switches_nothing(tmp_path, mirrored):
    home = tmp_path / "restored"
    mailarchive(home, "restore", "--from", mirrored["url"], "--key-backup", str(mirrored["kb"]))
    at_mirror = _files(mirrored["dir"] / "medium-1")
    pack = next(n for n in at_mirror if n.endswith(".pack"))
    local = tmp_path / "local-m1"
    (local / pack).parent.mkdir(parents=True)
    (local / pack).write_bytes(b"something else")
    p = mailarchive(home, "media", "move", "1", str(local), check=None)
    assert p.returncode != 0 and pack in p.stderr
    assert _media(home)[0]["location"].startswith(mirrored["url"])     # not switched


@pytest.mark.samba
def test_restore_media_to_puts_media_on_local_disk(tmp_path, mirrored):
    home, media = tmp_path / "restored", tmp_path / "media"
    r = mailarchive(home, "restore", "--from", mirrored["url"], "--key-backup", str(mirrored["kb"]),
                    "--media-to", str(media), json_out=True).result
    assert r["status"] == "restored" and [mv["to"] for mv in r["moved"]] == [str(media / "medium-1")]
    m = _media(home)[0]
    assert m["location"] == str(media / "medium-1") and m["state"] == "active"
    assert _files(media / "medium-1") == _files(mirrored["dir"] / "medium-1")
    assert _exported(home, tmp_path / "export-after") == mirrored["shas"]
