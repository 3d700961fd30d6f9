"""A new medium goes into an empty place (docs/reliability.md P11): ``init --medium`` and ``media add`` refuse a
directory that holds files (another program's, a mirror of another archive, mail meant for import) before anything is
written, and allow what a fresh file system or a desktop leaves there (``lost+found``, ``.Trash-1000``, ``.DS_Store``)."""
from __future__ import annotations

from tests.cli import mailarchive


def test_a_new_medium_goes_into_an_empty_place_only(tmp_path):
    busy = tmp_path / "busy"
    (busy / "photos").mkdir(parents=True)
    (busy / "photos" / "2019.jpg").write_bytes(b"\xff\xd8\xff")
    home = tmp_path / "home"
    p = mailarchive(home, "init", "--kdf-profile", "test", "--medium", str(busy), "--key-backup",
                    str(tmp_path / "kb.txt"), check=2)
    assert f"{busy} is not empty (it holds photos/2019.jpg)" in " ".join(p.stderr.split())
    assert not home.exists() and sorted(x.name for x in busy.rglob("*")) == ["2019.jpg", "photos"]

    mount_root = tmp_path / "disk"
    for clutter in ("lost+found/#12", ".Trash-1000/files/x", ".DS_Store"):
        (mount_root / clutter).parent.mkdir(parents=True, exist_ok=True)
        (mount_root / clutter).write_bytes(b"x")
    mailarchive(home, "init", "--kdf-profile", "test", "--medium", str(mount_root), "--key-backup",
                str(tmp_path / "kb.txt"))
    assert (mount_root / "MEDIUM.json").exists()

    p = mailarchive(home, "media", "add", str(busy), check=2)
    assert "is not empty" in p.stderr and not (busy / "MEDIUM.json").exists()
    (busy / "photos" / "2019.jpg").unlink()
    (busy / "photos").rmdir()
    mailarchive(home, "media", "add", str(busy))
    assert (busy / "MEDIUM.json").exists()


def test_a_medium_moves_into_an_empty_place_or_onto_its_own_interrupted_copy(tmp_path):
    import shutil

    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "a.eml").write_bytes(b"From: a@example.org\r\nSubject: m\r\n\r\nbody\r\n")
    mailarchive(home, "import", "eml", str(tmp_path / "mail"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_bytes(b"mine\n")
    p = mailarchive(home, "media", "move", "1", str(busy), check=2)
    assert "holds notes.txt, which is no file of medium 1" in " ".join(p.stderr.split())
    assert sorted(x.name for x in busy.iterdir()) == ["notes.txt"]
    # an interrupted move left part of the medium there (and the file system its lost+found): the move goes on
    partial = tmp_path / "partial"
    shutil.copytree(home / "medium-1", partial, ignore=shutil.ignore_patterns("*.pack"))
    (partial / "lost+found").mkdir()
    mailarchive(home, "media", "move", "1", str(partial))
    mailarchive(home, "verify")  # exit 0: every pack at the new place


def test_an_archive_home_is_a_directory_of_its_own(tmp_path):
    busy = tmp_path / "user-home"
    busy.mkdir()
    (busy / ".bashrc").write_bytes(b"alias ll='ls -l'\n")
    p = mailarchive(busy, "init", "--kdf-profile", "test", "--medium", str(tmp_path / "m1"), "--key-backup",
                    str(tmp_path / "kb.txt"), check=2)
    assert f"{busy} is not empty (it holds .bashrc)" in " ".join(p.stderr.split())
    assert [x.name for x in busy.iterdir()] == [".bashrc"] and not (tmp_path / "m1").exists()
    mount_root = tmp_path / "disk"
    (mount_root / "lost+found").mkdir(parents=True)
    mailarchive(mount_root, "init", "--kdf-profile", "test", "--medium", str(tmp_path / "m2"), "--key-backup",
                str(tmp_path / "kb2.txt"))
    assert (mount_root / "archive.toml").exists()
