"""Another archive's mirror is never mirrored into (docs/reliability.md Q6): its sealed MIRROR.json does not open
with this archive's key, or a medium label there names another archive. Refused with exit 2 before anything is
written or recorded (mirror-status stays as it was); that mirror stays byte for byte as it was."""
from __future__ import annotations

import json

from tests.cli import mailarchive

MAIL = b"From: a@example.org\r\nSubject: %d\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n\r\nbody %d\r\n"


def _archive(tmp_path, name):
    home = tmp_path / name
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / f"{name}.kb"))
    src = tmp_path / f"{name}-mail"
    src.mkdir()
    (src / "a.eml").write_bytes(MAIL % (len(name), len(name)))
    mailarchive(home, "import", "eml", str(src))
    return home


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_mirror_of_another_archive_is_refused_and_left_as_it_is(tmp_path):
    a, b = _archive(tmp_path, "a"), _archive(tmp_path, "b")
    dest = tmp_path / "mirror"
    mailarchive(a, "mirror", str(dest))
    before = _tree(dest)
    status = (b / "mirror-status.json").read_bytes() if (b / "mirror-status.json").exists() else None
    p = mailarchive(b, "mirror", str(dest), check=2)
    assert "holds the mirror of another archive" in " ".join(p.stderr.split())
    assert _tree(dest) == before
    got = (b / "mirror-status.json").read_bytes() if (b / "mirror-status.json").exists() else None
    assert got == status or str(dest) not in json.loads(got)  # nothing recorded for a run that never began

    # a first run of A that ended before its MIRROR.json: A's medium label there still says whose it is
    (dest / "MIRROR.json").unlink()
    before = _tree(dest)
    p = mailarchive(b, "mirror", str(dest), "--delete", check=2)  # --delete would have removed A's files
    assert "holds a medium of another archive" in " ".join(p.stderr.split())
    assert _tree(dest) == before
    # and A itself goes on mirroring there
    mailarchive(a, "mirror", str(dest))
    assert (dest / "MIRROR.json").exists()


def test_a_restore_with_another_archive_s_key_backup_names_both_archives(tmp_path):
    a, b = _archive(tmp_path, "a"), _archive(tmp_path, "b")
    dest = tmp_path / "mirror"
    mailarchive(a, "db", "backup", "--full")
    mailarchive(a, "mirror", str(dest))
    uuid_a = json.loads(mailarchive(a, "key", "fingerprint", json_out=True).stdout)["uuid"]
    uuid_b = json.loads(mailarchive(b, "key", "fingerprint", json_out=True).stdout)["uuid"]
    new = tmp_path / "new-home"
    p = mailarchive(new, "restore", "--from", str(dest), "--key-backup", str(tmp_path / "b.kb"), check=12)
    text = " ".join(p.stderr.split())
    assert f"is the mirror of archive {uuid_a}, and this key backup is of archive {uuid_b}" in text
    assert not new.exists()
    mailarchive(new, "restore", "--from", str(dest), "--key-backup", str(tmp_path / "a.kb"))


def test_a_first_mirror_into_a_folder_of_other_files_is_refused_and_its_own_mirror_takes_files_beside_it(tmp_path):
    """Q7: a first mirror goes into an empty place (file-system clutter allowed); a folder of the user's files is
    refused with exit 2 and left as it was. A mirror of this archive (its state opens, or a first run cut short left
    only its medium folders) is mirrored into again, files beside it or not."""
    a = _archive(tmp_path, "a")
    user = tmp_path / "documents"
    (user / "taxes").mkdir(parents=True)
    (user / "taxes" / "2019.pdf").write_bytes(b"%PDF-1.4 not mail")
    before = _tree(user)
    p = mailarchive(a, "mirror", str(user), check=2)
    assert "documents is not empty (it holds taxes/2019.pdf) and is no mirror of this archive" in " ".join(p.stderr.split())
    assert _tree(user) == before

    clutter = tmp_path / "usb"
    (clutter / "lost+found").mkdir(parents=True)
    (clutter / ".DS_Store").write_bytes(b"x")
    mailarchive(a, "mirror", str(clutter))
    assert (clutter / "MIRROR.json").exists()

    dest = tmp_path / "mirror"
    mailarchive(a, "mirror", str(dest))
    (dest / "README.txt").write_text("the mirror of the archive a\n")   # a note beside it: still its mirror
    mailarchive(a, "mirror", str(dest))
    (dest / "MIRROR.json").unlink()                                    # a first run cut short: labels say whose
    mailarchive(a, "mirror", str(dest))
    assert (dest / "README.txt").read_text() == "the mirror of the archive a\n"
