"""Owners named by a migration plan (docs/cli.md "migrate", docs/formats.md ``sightings.owner``): recorded
on every sighting of the source, counted per user by ``directory list``, and an owner that names no
directory user is warned about in the report (not an error: exit 0)."""
from __future__ import annotations

from tests.cli import mailarchive

ACTOR = {"MAILARCHIVE_ACTOR": "lead"}


def _maildir(root, mails):
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i, m in enumerate(mails):
        (root / "cur" / f"{i}.M{i}P1.host:2,").write_bytes(m)


def _mail(tag, n):
    return f"From: {tag}@example.com\nSubject: {tag} {n}\nMessage-ID: <{tag}-{n}@x>\n\nbody {n}\n".encode()


def test_owner_on_every_sighting_counted_by_directory_list_and_unknown_owner_warned(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    (tmp_path / "dir.toml").write_text('domains = ["example.com"]\n[[user]]\nname = "anna"\n'
                                       'addresses = ["anna@example.com"]\n')
    mailarchive(home, "directory", "import", str(tmp_path / "dir.toml"), env=ACTOR)
    _maildir(tmp_path / "a", [_mail("anna", i) for i in range(3)])
    _maildir(tmp_path / "g", [_mail("ghost", i) for i in range(2)] + [_mail("anna", 0)])
    (tmp_path / "plan.csv").write_text("kind,location,user,password_file,owner,folders\n"
                                       "maildir,a,,,anna,\nmaildir,g,,,ghost,\n")
    r = mailarchive(home, "migrate", "run", str(tmp_path / "plan.csv"), json_out=True).result
    assert r["status"] == "complete" and r["warnings"] == [
        "owner 'ghost' names no user of the directory (directory import adds users)"]
    rows = mailarchive(home, "sql", "SELECT owner, count(*) AS n FROM sightings GROUP BY owner ORDER BY owner",
                       "--format", "csv").stdout.split()
    assert rows == ["owner,n", "anna,3", "ghost,3"]  # the duplicate arrival is the ghost's sighting too
    listed = mailarchive(home, "directory", "list", json_out=True).result
    assert listed["owned_sightings"] == {"anna": 3}
    assert "owns 3 sightings" in mailarchive(home, "directory", "list").stdout
