"""The archive's own files are never imported (docs/reliability.md N9): a source inside the home, a medium or the
mirror is refused before a run starts; a tree that holds them is read without them, each listed once as skipped,
even with ``--force-raw`` (which archived the raw key file, the catalog and the packs as mails before)."""
from __future__ import annotations

import shutil
import tomllib

from importers.walk import FileEntry, walk_local, without_own
from tests.cli import mailarchive

MAIL = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: own\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n\r\nbody\r\n"


def _archive_in(parent, tmp_path):
    home = parent / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--medium", str(parent / "medium-1"),
                "--key-backup", str(tmp_path / "kb.txt"))
    return home


def test_a_tree_holding_the_archive_is_read_without_it_and_a_source_inside_it_is_refused(tmp_path):
    parent = tmp_path / "srv"
    (parent / "mail").mkdir(parents=True)
    (parent / "mail" / "a.eml").write_bytes(MAIL)
    home = _archive_in(parent, tmp_path)
    mailarchive(home, "config", "set", "mirror.dest", str(parent / "mirror"))
    mailarchive(home, "mirror", str(parent / "mirror"))  # a mirror below the tree too

    r = mailarchive(home, "import", "eml", "--force-raw", str(parent), json_out=True).result
    assert r["archived"] == 1 and r["errors"] == 0
    skipped = {p["ref"]: p["message"] for p in r["sources"][0]["problems"] if p["kind"] == "skipped"}
    assert set(skipped) == {"home", "medium-1", "mirror"}
    assert "the archive home" in skipped["home"] and "never imported" in skipped["home"]
    assert skipped["medium-1"].startswith("medium 1 (") and skipped["mirror"].startswith("the configured mirror (")
    for kind in ("share", "maildir"):
        r = mailarchive(home, "import", kind, str(parent), json_out=True, check=None).result
        assert {p["ref"] for p in r["sources"][0]["problems"] if "never imported" in p["message"]} == \
            {"home", "medium-1", "mirror"}, kind
    rows = mailarchive(home, "sql", "SELECT count(*) AS n FROM messages", json_out=True).result
    assert rows == [{"n": 1}]

    runs = mailarchive(home, "sql", "SELECT count(*) AS n FROM runs", json_out=True).result[0]["n"]
    for kind, source in (("eml", home / "key"), ("eml", parent / "medium-1"), ("mbox", home / "archive.toml"),
                         ("maildir", parent / "mirror")):
        p = mailarchive(home, "import", kind, str(source), check=2)
        assert "the archive's own files are never imported" in " ".join(p.stderr.split()), (kind, source)
    assert mailarchive(home, "sql", "SELECT count(*) AS n FROM runs", json_out=True).result[0]["n"] == runs


def test_without_own_lists_each_place_once_and_leaves_other_walks_alone(tmp_path):
    root = tmp_path / "t"
    for rel in ("a.eml", "home/key", "home/catalog.duckdb", "homes/x.eml", "z/m/packs/1.pack", "z/m2.eml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    entries = walk_local(bytes(root))
    assert without_own(entries, bytes(root), ()) is entries
    places = [("the archive home", str(root / "home")), ("medium 2", str(root / "z" / "m")),
              ("medium 3", str(tmp_path / "elsewhere"))]
    got = without_own(entries, bytes(root), places)
    assert [(e.rel, e.skip_reason is not None) for e in got] == [
        (b"a.eml", False), (b"home", True), (b"homes/x.eml", False), (b"z/m", True), (b"z/m2.eml", False)]
    assert got[1] == FileEntry(b"home", 0, 0.0, f"the archive home ({root / 'home'}): the archive's own files are "
                                                "never imported")


def test_a_plan_is_checked_and_run_without_the_archive_s_own_files(tmp_path):
    parent = tmp_path / "srv"
    (parent / "mail").mkdir(parents=True)
    (parent / "mail" / "a.eml").write_bytes(MAIL)
    home = _archive_in(parent, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,location,user,password_file,owner,folders\n"
                   f"eml,{parent / 'mail'},,,,\nmaildir,{parent / 'medium-1'},,,,\n")
    for cmd, status in (("check", 1), ("run", 2)):
        p = mailarchive(home, "migrate", cmd, str(bad), check=status)
        text = " ".join((p.stdout + p.stderr).split())
        assert "line 3: maildir: " in text and "is inside medium 1" in text and "never imported" in text, cmd
    assert mailarchive(home, "sql", "SELECT count(*) AS n FROM runs", json_out=True).result == [{"n": 0}]
    good = tmp_path / "good.csv"
    good.write_text(f"kind,location,user,password_file,owner,folders\neml,{parent},,,,\n")
    r = mailarchive(home, "migrate", "run", str(good), json_out=True).result
    (source,) = r["sources"]
    assert source["archived"] == 1 and source["errors"] == 0
    assert {p["ref"] for p in source["problems"] if "never imported" in p["message"]} == {"home", "medium-1"}


def test_homes_and_media_found_by_their_files_are_never_imported_whatever_archive_and_path(tmp_path):
    """N9 by content: a medium reached by another path than the configured one (an SMB medium mounted locally, a
    copy on a USB disk) and another archive's home (its raw key beside its config) lie in an import tree. The walk
    tells them by their label and config and skips each as one entry, even with --force-raw; a stray MEDIUM.json or
    archive.toml that is no label or config is read as any file."""
    other = tmp_path / "other-home"
    mailarchive(other, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "other.kb"))
    mine = _archive_in(tmp_path / "srv", tmp_path)
    tree = tmp_path / "tree"
    (tree / "mail").mkdir(parents=True)
    (tree / "mail" / "a.eml").write_bytes(MAIL)
    (tree / "notes").mkdir()
    (tree / "notes" / "MEDIUM.json").write_bytes(b'{"note": "a file of this name that is no label"}')
    shutil.copytree(other, tree / "backup" / "other-home")
    shutil.copytree(tmp_path / "srv" / "medium-1", tree / "mnt" / "share-medium")  # the medium by another path
    r = mailarchive(mine, "import", "eml", "--force-raw", str(tree), json_out=True).result
    skipped = {p["ref"]: p["message"] for p in r["sources"][0]["problems"] if p["kind"] == "skipped"}
    assert set(skipped) == {"backup/other-home", "mnt/share-medium"}
    uuid_of = lambda home: tomllib.loads((home / "archive.toml").read_text())["uuid"]  # noqa: E731
    assert skipped["backup/other-home"] == (f"an archive home of the mail archive {uuid_of(other)} "
                                            "(backup/other-home): its files are never imported")
    assert skipped["mnt/share-medium"].startswith(f"a medium of the mail archive {uuid_of(mine)} (mnt/share-medium)")
    assert r["archived"] == 2  # the mail and the stray MEDIUM.json (--force-raw), nothing of the home or the medium
    refs = mailarchive(mine, "sql", "SELECT source_ref FROM sightings ORDER BY 1", json_out=True).result
    assert [row["source_ref"] for row in refs] == ["mail/a.eml", "notes/MEDIUM.json"]
