"""`media gc --temp` (docs/reliability.md B3): the temporary files of killed writers are removed once old,
on a local medium and on the real Samba share; sealed packs, young temp files and other programs'
``*.tmp`` files stay."""
from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.services.samba import USER
from toolkit.storage import parse_location

DAY = 86400


def _mails(root: Path, n: int = 3) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"{i}.eml").write_text(f"From: a@example.com\nTo: b@example.org\nSubject: gc {i}\n"
                                       f"Message-ID: <gc-{i}@x>\n\nbody {i}\n")
    return root


def _leave(raw: Path, name: str, age: float, owner: str | None, data: bytes = b"half written") -> Path:
    """A file at ``raw/name`` whose modification time is ``age`` seconds ago."""
    p = raw / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    t = time.time() - age
    os.utime(p, (t, t))
    if owner:
        shutil.chown(p, user=owner)
        shutil.chown(p.parent, user=owner)
    return p


@pytest.fixture(params=["local", "smb"])
def medium(request, tmp_path):
    """(location, the medium's directory as this host sees it, the owner files there need)."""
    if request.param == "local":
        return str(tmp_path / "m1"), tmp_path / "m1", None
    url = request.getfixturevalue("smb_location")
    samba = request.getfixturevalue("samba")
    return url, samba.share_dir / parse_location(url).path, USER


def test_b3_gc_temp_removes_only_old_temp_files_of_the_toolkit(tmp_path, medium):
    location, raw, owner = medium
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", location)
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "src")))
    packs = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.pack"))
    assert packs
    for p in packs:  # sealed packs as old as the leftovers: age alone never removes them
        t = time.time() - 3 * DAY
        os.utime(raw / p, (t, t))
    old_pack_temp = f"packs/ab/{secrets.token_hex(16)}.pack.{secrets.token_hex(6)}.tmp"
    old_manifest_temp = f"stamps/batch-00000009.manifest.{secrets.token_hex(6)}.tmp"
    young_temp = f"packs/cd/{secrets.token_hex(16)}.pack.{secrets.token_hex(6)}.tmp"
    foreign = ["notes.tmp", "packs/ab/other.tmp", "packs/ab/x.pack.NOTHEX123456.tmp"]
    _leave(raw, old_pack_temp, 2 * DAY, owner, os.urandom(5000))
    _leave(raw, old_manifest_temp, 30 * 3600, owner)
    _leave(raw, young_temp, 600, owner)
    for name in foreign:
        _leave(raw, name, 5 * DAY, owner)

    dry = mailarchive(home, "media", "gc", "--temp", "--dry-run", json_out=True).result
    assert dry["dry_run"] and dry["removed"] == 0
    assert {f["name"] for f in dry["files"]} == {old_pack_temp, old_manifest_temp}
    assert (raw / old_pack_temp).exists() and (raw / old_manifest_temp).exists()

    r = mailarchive(home, "media", "gc", "--temp", json_out=True).result
    assert r["removed"] == 2 and r["media"] == [1] and r["kept_younger"] == 1 and not r["unreachable"]
    assert {f["name"] for f in r["files"]} == {old_pack_temp, old_manifest_temp}
    assert r["bytes"] == 5000 + len(b"half written")
    assert all(f["age_seconds"] >= DAY for f in r["files"])
    assert not (raw / old_pack_temp).exists() and not (raw / old_manifest_temp).exists()
    assert (raw / young_temp).exists()
    assert all((raw / name).exists() for name in foreign)
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.pack")) == packs
    assert not list(raw.glob("locks/clock-*"))  # the clock probe is gone again

    # a shorter age takes the young one too; nothing else changes, and the archive still verifies
    r = mailarchive(home, "media", "gc", "--temp", "--older-than", "5m", json_out=True).result
    assert [f["name"] for f in r["files"]] == [young_temp]
    assert all((raw / name).exists() for name in foreign)
    mailarchive(home, "verify", "--full")


def test_b3_gc_usage_and_lock(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    p = mailarchive(home, "media", "gc", check=2)
    assert "--temp" in p.stderr
    p = mailarchive(home, "media", "gc", "--temp", "--older-than", "yesterday", check=2)
    assert "--older-than" in p.stderr and "24h" in p.stderr
    mailarchive(home, "media", "gc", "--temp", "--medium", "7", check=2)
    from toolkit.home import Home  # another writer holds the home: gc removes nothing beside it

    lock = Home(home).lock()
    try:
        mailarchive(home, "media", "gc", "--temp", check=11)
    finally:
        lock.release()
