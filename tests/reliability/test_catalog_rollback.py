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


def _restore(tmp_path: Path, dest: Path, name: str) -> tuple[Path, dict]:
    home = tmp_path / name
    r = mailarchive(home, "restore", "--from", str(dest), "--key-backup", str(tmp_path / "kb.txt"), json_out=True)
    return home, r.result


def test_h2_marks_travel_with_the_mirror_so_a_restore_from_it_sees_an_older_backup(tmp_path):
    """A mirror run stopped after the packs and marks of a later import (before its catalog backup and its
    state): the restore takes the older backup; the marks it finds at DEST say so once, with the same
    pack quick verify's Q10 then names, and `db rebuild --force` adopts it."""
    home, dest = tmp_path / "home", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s1", "first", 3)))
    mailarchive(home, "mirror", str(dest))
    assert len(list((dest / "medium-1" / "marks").glob("pack-*.mark"))) == 1
    old = tmp_path / "mirror-old"
    shutil.copytree(dest, old)
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s2", "second", 2)))
    r = mailarchive(home, "mirror", str(dest), json_out=True).result
    assert r["backup_made"], r  # the mirror backs the catalog up first: the full run leaves no gap
    # the run that stopped: the new pack and its mark reached DEST, the backup and MIRROR.json did not
    new_marks = {p.name for p in (dest / "medium-1" / "marks").iterdir()} - {
        p.name for p in (old / "medium-1" / "marks").iterdir()}
    (new_mark,) = new_marks
    new_pack = new_mark.removeprefix("pack-").removesuffix(".mark")
    shutil.copy2(dest / "medium-1" / "marks" / new_mark, old / "medium-1" / "marks" / new_mark)
    rel = f"packs/{new_pack[:2]}/{new_pack}.pack"
    (old / "medium-1" / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dest / "medium-1" / rel, old / "medium-1" / rel)

    restored, res = _restore(tmp_path, old, "restored")
    assert res["messages"] == 3 and res["marked_not_in_catalog"] == {"packs": [new_pack], "batches": []}
    assert res["behind"] == {"mails": 0, "packs": 0, "batches": 0}  # MIRROR.json is of the first run
    said = [w for w in res["warnings"] if "newer than" in w or "older than" in w or "behind" in w]
    assert len(said) == 1, res["warnings"]  # once: not again as "pack(s) at DEST newer than the backup"
    assert "the high-water marks at DEST name 1 pack(s) and 0 stamp batch(es)" in said[0], said
    assert "db rebuild --force" in said[0] and "Q10" in said[0]
    q = _q10(restored)
    assert q["exit"] == 1 and q["status"] == "finding", q
    assert q["examples"][0]["pack"] == new_pack and "1 packs / 0 batches" in q["examples"][0]["detail"], q

    mailarchive(restored, "db", "rebuild", "--force")
    q = _q10(restored)
    assert q["exit"] == 0 and q["status"] == "ok", q
    # (a restore from the complete mirror warns nothing: tests/integration/test_backup_mirror.py, Q1)


def test_h2_consolidation_carries_the_marks_so_a_rollback_is_still_found(tmp_path):
    """Media 1 and 2 consolidated into 3 and retired (and moved away): the marks of their packs are on
    medium 3, so a catalog put back from before the second import is still found by Q10."""
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s1", "first", 3)))
    old = tmp_path / "old-catalog"
    old.mkdir()
    for f in home.glob(CATALOG_NAME + "*"):
        shutil.copy2(f, old / f.name)
    mailarchive(home, "media", "add", str(tmp_path / "m2"), "--activate")
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s2", "second", 2)))
    (mark2,) = (tmp_path / "m2" / "marks").glob("pack-*.mark")
    mailarchive(home, "media", "add", str(tmp_path / "m3"), "--activate")
    r = mailarchive(home, "media", "consolidate", "--from", "1,2", "--into", "3", json_out=True).result
    assert r["summary"]["packs_moved"] == 2
    assert {p.name for p in (tmp_path / "m3" / "marks").glob("pack-*.mark")} == {
        p.name for m in ("m1", "m2") for p in (tmp_path / m / "marks").glob("pack-*.mark")}
    for m in ("m1", "m2"):
        (tmp_path / m).rename(tmp_path / f"{m}-gone")
    q = _q10(home)
    assert q["exit"] == 0 and q["note"].startswith("2 high-water marks"), q

    for f in home.glob(CATALOG_NAME + "*"):
        f.unlink()
    for f in old.iterdir():
        shutil.copy2(f, home / f.name)
    q = _q10(home)
    assert q["status"] == "finding" and q["examples"][0]["medium"] == 3, q
    assert q["examples"][0]["pack"] == mark2.name.removeprefix("pack-").removesuffix(".mark"), q


def test_h2_a_purged_packs_mark_stays_on_a_plain_mirror_and_proves_nothing(tmp_path):
    """A purge removes the old pack and its mark locally: a plain mirror keeps both at DEST, and a restore
    from it (whose backup records the purge) is not called older than the media; `mirror --delete`
    removes them."""
    import datetime as dt

    from toolkit.archive import Archive
    from toolkit.catalog import purge_rows, retention as retention_rows

    home, dest = tmp_path / "home", tmp_path / "mirror"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "eml", str(_mails(tmp_path / "s1", "first", 3)))
    mailarchive(home, "mirror", str(dest))
    (old_mark,) = (dest / "medium-1" / "marks").glob("pack-*.mark")
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.writing() as con:
            retention_rows.set_policy(con, "domain", "example.org", 0, "records-manager")
            (msg_id,) = con.execute("SELECT min(msg_id) FROM messages").fetchone()
            purge_rows.insert_approved_request(con, [msg_id], reason="test", requested_by="alice",
                                               approved_by="bob", now=dt.datetime.now(dt.timezone.utc))
    mailarchive(home, "purge", "--actor", "carol")
    assert not (tmp_path / "m1" / "marks" / old_mark.name).exists()

    mailarchive(home, "mirror", str(dest))
    assert (dest / "medium-1" / "marks" / old_mark.name).exists()  # kept, as its pack is
    assert len(list((dest / "medium-1" / "marks").glob("pack-*.mark"))) == 2
    restored, res = _restore(tmp_path, dest, "restored")
    assert res["messages"] == 2 and res["marked_not_in_catalog"] == {"packs": [], "batches": []}
    assert res["packs_not_in_catalog"] == 0, res  # the purged pack is not "newer than the backup"
    assert _q10(restored)["status"] == "ok"

    r = mailarchive(home, "mirror", str(dest), "--delete", json_out=True).result
    assert f"medium-1/marks/{old_mark.name}" in r["deleted"], r["deleted"]
    assert not (dest / "medium-1" / "marks" / old_mark.name).exists()
    assert len(list((dest / "medium-1" / "marks").glob("pack-*.mark"))) == 1
