"""The catalog rolled back to an older copy (docs/reliability.md H2), found by high-water marks on the media.

Every committed pack and every stamped batch leaves a small create-only mark on its medium after
its commit (``toolkit/marks.py``). The archive is imported and stamped, the catalog file copied
aside (after a `db backup`), more mail is imported and stamped, then the older catalog file is
put back: quick verify names the packs and batches newer than the catalog, gives the next step
and exits 1. `db rebuild --force` from the media is the way back: then verify is clean.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli import mailarchive, run_cli
from toolkit.home import CATALOG_NAME

from fixtures_tsa import tsa  # noqa: F401  (also loaded by conftest's pytest_plugins)


def _mails(root: Path, tag: str, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"{tag}-{i}.eml").write_text(
            f"From: a{i}@example.org\nTo: b@example.org\nSubject: {tag} {i}\nMessage-ID: <{tag}-{i}@example.org>\n"
            f"Date: Mon, 01 Jul 2019 10:00:00 +0000\n\n{tag} body {i}\n")
    return root


def _q10(home: Path) -> dict:
    r = mailarchive(home, "verify", json_out=True, check=None)
    checks = {c["id"]: c for c in r.result["checks"]}
    return {"exit": r.returncode, **checks["Q10"]}


def test_h2_catalog_put_back_from_an_older_copy_is_reported(tmp_path, tsa_ok):
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s1", "first", 5)))
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "db", "backup")
    q = _q10(home)
    assert q["exit"] == 0 and q["status"] == "ok" and q["note"].startswith("2 high-water marks"), q
    old = tmp_path / "old-catalog"
    old.mkdir()
    for f in home.glob(CATALOG_NAME + "*"):
        shutil.copy2(f, old / f.name)

    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s2", "second", 4)))
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s3", "third", 3)))
    mailarchive(home, "timestamp", "run", "--all")
    assert _q10(home)["exit"] == 0

    for f in home.glob(CATALOG_NAME + "*"):
        f.unlink()
    for f in old.iterdir():
        shutil.copy2(f, home / f.name)
    q = _q10(home)
    assert q["exit"] == 1 and q["status"] == "finding" and q["count"] == 1, q
    detail = q["examples"][0]["detail"]
    assert "catalog older than the media: 2 packs / 1 batches newer than it" in detail, detail
    assert "db rebuild --force" in detail and "restore --from" in detail
    assert q["examples"][0]["medium"] == 1

    mailarchive(home, "db", "rebuild", "--force")
    q = _q10(home)
    assert q["exit"] == 0 and q["status"] == "ok", q


def test_h2_marks_are_no_kill_sites_so_the_nth_kill_still_lands_in_a_pack(tmp_path):
    """The crash tests kill at the nth passage of the storage's write points; a mark written after each
    commit must not take one of those passages (the kill would land in a mark instead of the next pack)."""
    import os
    import signal
    import sys

    from tests.cli import PASSWORD

    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"{i}.eml").write_text(f"From: a@example.org\nSubject: k {i}\nMessage-ID: <k-{i}@x>\n\n" + f"{i} " * 2000)
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(16 * 1024),
           "MAILARCHIVE_FAULT": "storage.after_write:2"}
    p = run_cli([sys.executable, "-m", "toolkit", "--archive", str(home), "import", "eml", str(src)], env=env, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    temps = [x.relative_to(medium).as_posix() for x in medium.rglob("*.tmp")]
    assert len(temps) == 1 and temps[0].startswith("packs/"), temps
    assert len(list(medium.glob("packs/*/*.pack"))) == 1 and len(list(medium.glob("marks/*.mark"))) == 1
