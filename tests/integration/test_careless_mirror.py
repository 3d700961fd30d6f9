"""``mirror`` never leaves an unrestorable mirror looking like a success.

Before any catalog backup it makes one first and says so (the scripted careless-user day covers that
on Samba); when a writer holds the archive so that no backup can be made, it mirrors what there is and
exits 1 naming the missing backup, and the next mirror makes one.
"""
from __future__ import annotations

import subprocess
import sys

from tests.cli import mailarchive
from tests.corpora import REPO

HOLD = """
import sys, time
from pathlib import Path
from toolkit.archive import Archive
a = Archive.open(Path(sys.argv[1]), writer=True)
print("locked", flush=True)
sys.stdin.readline()
a.close()
"""


def test_mirror_while_a_writer_holds_the_archive_says_no_backup(tmp_path):
    home, dest = tmp_path / "home", tmp_path / "mirror"
    mailarchive(home, "init", "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml" / "2019"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = mailarchive(home, "mirror", str(dest), check=1)
        assert "no catalog backup made (there is no catalog backup yet)" in " ".join(p.stderr.split())
        assert "newest backup None" in p.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    r = mailarchive(home, "mirror", str(dest), json_out=True).result
    assert r["backup_made"]["name"] and r["newest_backup"] == r["backup_made"]["name"]
    assert any(f.endswith(".sealed") for f in r["copied_files"])  # the config snapshot restore needs


def test_restore_from_a_place_that_holds_no_mirror_is_a_usage_error(tmp_path):
    """A mistyped or wrong --from is the user's mistake (exit 2, naming the place), not "restored with
    findings" (exit 1, as before); a missing place was called "empty"."""
    mailarchive(tmp_path / "home", "init", "--key-backup", str(tmp_path / "kb.txt"))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    for place, said in ((tmp_path / "no-such-mirror", "is empty or does not exist: not a mirror"),
                        (tmp_path / "photos", "holds no mirror")):
        p = mailarchive(tmp_path / "unused", "restore", "--from", str(place), "--key-backup", str(tmp_path / "kb.txt"),
                        "--archive", str(tmp_path / "restored"), check=2)
        assert str(place) in p.stderr and said in p.stderr
        assert not (tmp_path / "restored" / "archive.toml").exists()


def test_a_medium_or_a_mirror_given_as_the_home_is_named_as_what_it_is(tmp_path):
    home, medium, dest = tmp_path / "home", tmp_path / "medium", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml" / "2019"))
    mailarchive(home, "mirror", str(dest))
    p = mailarchive(medium, "stats", check=10)
    assert "it is a storage medium (MEDIUM.json), not an archive home" in " ".join(p.stderr.split())
    p = mailarchive(dest, "stats", check=10)
    assert "it is a mirror (MIRROR.json), not an archive home" in " ".join(p.stderr.split())
    p = mailarchive(tmp_path / "elsewhere", "stats", check=10)
    assert "no archive at" in p.stderr and "it is a" not in p.stderr
