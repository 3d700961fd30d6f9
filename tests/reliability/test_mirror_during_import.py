"""A mirror run while an import is writing (docs/reliability.md O7).

The mirror reads the catalog first and copies only the packs it lists: a pack the import has
written but not yet committed (or a temp file) never reaches the mirror under a final name. The
import is slowed at every commit so the mirror runs really meet it in the middle.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive

N_MAILS = 120
STRAY = "e" * 32 + ".pack"


def _packs(home: Path) -> dict[str, int]:
    out = mailarchive(home, "sql", "SELECT name, bytes FROM packs", "--format", "json").stdout
    return {r["name"]: r["bytes"] for r in json.loads(out)}


def _mirrored(dest: Path) -> dict[str, int]:
    base = dest / "medium-1"
    return {p.relative_to(base).as_posix(): p.stat().st_size for p in base.rglob("*.pack")
            if p.name != STRAY} if base.exists() else {}  # the stray the test puts there aside


@pytest.mark.parametrize("delete", [False, True], ids=["mirror", "mirror-delete"])
def test_o7_mirror_runs_during_an_import_copy_only_committed_packs(tmp_path, delete):
    """With ``--delete`` too: a mirror that removes at DEST what the archive no longer has never removes
    a pack the import committed meanwhile (what is at DEST only grows during the import)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(N_MAILS):
        (src / f"{i:04d}.eml").write_text(
            f"From: a{i}@example.com\nSubject: o7 {i}\nMessage-ID: <o7-{i}@x>\n\n" + f"text {i} " * 300 + "\n")
    home, dest = tmp_path / "home", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "8192",
           # a pack sealed on the medium waits before its commit: the window a careless mirror would copy
           "MAILARCHIVE_FAULT_SLOW": "after_pack_seal:0.3"}
    env.pop("MAILARCHIVE_FAULT", None)
    mailarchive(home, "mirror", str(dest))  # an empty archive: DEST becomes its mirror
    stray = dest / "medium-1" / "packs" / "ee" / STRAY  # a pack the archive no longer has
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"purged long ago")
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml",
                             str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    runs = 0
    earlier: dict[str, int] = {}
    try:
        while proc.poll() is None and runs < 20:
            if list((tmp_path / "m1").rglob("*.pack")):
                p = mailarchive(home, "--json", "mirror", str(dest), *(["--delete"] if delete else []), check=None)
                # beside a writer the mirror cannot make its catalog backup first: it copies what is
                # committed and says so with exit 1 (a finding), or ends 0 when a backup was current
                assert p.returncode in (0, 1), p.stdout + p.stderr
                if p.returncode == 1:
                    assert "mailarchive db backup" in p.stdout, p.stdout
                runs += 1
                committed = _packs(home)  # read after the mirror: everything it copied was committed before
                copied = _mirrored(dest)
                assert set(copied) <= set(committed), set(copied) - set(committed)
                assert all(copied[n] == committed[n] for n in copied)
                assert not list(dest.rglob("*.tmp"))
                assert set(earlier) <= set(copied), set(earlier) - set(copied)  # nothing committed went away
                assert stray.exists() is not delete  # --delete removes only what the archive does not have
                earlier = copied
            time.sleep(0.05)
    finally:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert runs >= 2, "the import ended before the mirror could run beside it"
    assert json.loads(out)["archived"] == N_MAILS
    p = mailarchive(home, "--json", "mirror", str(dest), *(["--delete"] if delete else []), check=None)
    assert p.returncode == 0, p.stderr
    assert _mirrored(dest) == _packs(home)  # the next run catches up completely
    assert stray.exists() is not delete
