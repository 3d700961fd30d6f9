"""Media IDs are never reused after a restore from an older state (docs/reliability.md P2, R6).

The mirror holds medium 2, added after the newest catalog backup and config snapshot. A restore
from that mirror gets the older config (media 1 only); the next medium must still get ID 3, never
2, and the restore says that the mirror holds a medium the restored catalog does not know.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.cli import mailarchive


def _mails(root: Path, name: str, n: int) -> Path:
    src = root / name
    src.mkdir()
    for i in range(n):
        (src / f"{i}.eml").write_text(f"From: a@b.c\nSubject: {name} {i}\nMessage-ID: <{name}-{i}@x>\n\nbody {i}\n")
    return src


def test_p2_restore_from_an_older_backup_never_reuses_a_medium_id(tmp_path):
    home, mirror = tmp_path / "home", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(_mails(tmp_path, "first", 3)))
    mailarchive(home, "db", "backup")                       # the newest backup: medium 1 only
    mailarchive(home, "mirror", str(mirror))
    mailarchive(home, "media", "add", str(tmp_path / "m2"), "--activate")
    mailarchive(home, "import", "eml", str(_mails(tmp_path, "second", 4)))
    mailarchive(home, "mirror", str(mirror))                # medium 2's packs reach the mirror
    assert (mirror / "medium-2").is_dir()
    # mirror makes a catalog backup first when the catalog changed: take the mirror back to the state
    # where its newest backup and config snapshot still predate medium 2 (the old catalog of P2)
    for sub in ("db-backups", "config"):
        shutil.rmtree(mirror / "medium-2" / sub, ignore_errors=True)

    restored = tmp_path / "restored"
    p = mailarchive(restored, "--json", "restore", "--from", str(mirror),
                    "--key-backup", str(home / "key-backup.txt"), check=None)
    assert p.returncode in (0, 1), p.stderr
    text = " ".join((p.stdout + p.stderr).split())
    assert "the mirror holds medium 2, newer than the restored catalog backup" in text, text
    p = mailarchive(restored, "--json", "media", "add", str(tmp_path / "m-new"))
    added = json.loads(p.stdout)
    new_id = added.get("id", added.get("medium"))
    assert new_id == 3, added
    assert re.search(r"(?m)^next_medium_id = 4$", (restored / "archive.toml").read_text())
