"""The careless user's day, scripted against the real Samba.

A new technician follows the README and makes every mistake of points 1-5 of the issue. Each one
must be reported as one — the right exit status and a message that names the mistake — and never
look like a success. Point 9 (the config file: secrets sealed, cron lines that run as printed)
ends the day.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.cli import mailarchive
from tests.corpora import REPO

SAMPLE = REPO / "sample_data" / "eml"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010101004800480000") + b"\0" * 300
ELF = b"\x7fELF\x02\x01\x01\0" + b"\0" * 8 + b"\x02\0>\0" + b"\x90" * 300


def _mail(n: int) -> bytes:
    return (f"From: s{n}@example.com\r\nTo: r@example.com\r\nSubject: careless {n}\r\n"
            f"Message-ID: <careless-{n}@example.com>\r\nDate: Tue, 1 Oct 2024 10:00:0{n} +0000\r\n\r\nBody {n}\r\n").encode()


def test_careless_user_day(tmp_path, samba, smb_location, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # messages on one line each, whatever the width of the log
    home, kb = tmp_path / "home", tmp_path / "key-backup.txt"
    share_url = samba.url()                                           # smb://user@127.0.0.1:port/mail
    base = f"smb://{samba.user}@{samba.host}:{samba.port}"
    no_share = f"{base}/no-such-share"

    # -- 13. init: a key backup inside the home it must outlive is refused; without --key-backup a warning
    p = mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(home / "kb.txt"), check=2)
    assert "inside the archive home" in p.stderr and not (home / "archive.toml").exists()
    other = tmp_path / "other-home"
    p = mailarchive(other, "init", "--medium", str(tmp_path / "m-other"), json_out=True)
    r = json.loads(p.stdout)
    assert r["key_backup"] == str(other / "key-backup.txt")
    assert len(r["warnings"]) == 1 and r["key_backup"] in r["warnings"][0] and r["fingerprint"] in r["warnings"][0]
    assert r["fingerprint"] in p.stderr  # printed, not only written
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(kb))

    # -- 1. sources that do not exist: usage errors (2) naming them, never "0 seen, exit 0"
    p = mailarchive(home, "import", "share", f"{share_url}/does-not-exist", check=2)
    assert "does-not-exist" in p.stderr and "does not exist" in p.stderr
    p = mailarchive(home, "import", "eml", f"{share_url}/does-not-exist", json_out=True, check=2)
    assert '"complete"' not in p.stdout and "does-not-exist" in p.stderr
    p = mailarchive(home, "import", "share", no_share, check=2)
    assert "share 'no-such-share' does not exist" in p.stderr
    p = mailarchive(home, "import", "eml", str(tmp_path / "no-such-dir"), check=2)
    assert "no-such-dir does not exist" in p.stderr
    p = mailarchive(home, "import", "maildir", str(tmp_path / "no-such-maildir"), check=2)
    assert "no-such-maildir does not exist" in p.stderr
    p = mailarchive(home, "import", "mbox", str(tmp_path / "no-such.mbox"), check=2)
    assert "no-such.mbox does not exist" in p.stderr

    # ... and sources that exist but hold no mail: a finding (1)
    empty = samba.share_dir / smb_location.rsplit("/", 1)[1] / "empty"
    empty.mkdir(parents=True)
    shutil.chown(empty.parent, user=samba.user)
    shutil.chown(empty, user=samba.user)
    p = mailarchive(home, "import", "share", f"{smb_location}/empty", json_out=True, check=1)
    assert p.result["seen"] == 0 and p.result["errors"] == 1
    assert "no mail found" in p.result["sources"][0]["problems"][0]["message"]
    not_maildir = tmp_path / "not-a-maildir"
    not_maildir.mkdir()
    (not_maildir / "readme.txt").write_text("nothing here\n")
    p = mailarchive(home, "import", "maildir", str(not_maildir), check=1)
    assert "no mail found" in p.stderr

    # -- 2. import eml: non-mail is listed as skipped, never archived; --force-raw archives it anyway
    src = tmp_path / "eml-src"
    src.mkdir()
    (src / "photo.eml").write_bytes(JPEG)
    (src / "setup.exe.eml").write_bytes(ELF)
    (src / "notes.eml").write_text("Call the customer back on Monday.\n")
    for i in range(3):
        (src / f"mail-{i}.eml").write_bytes(_mail(i))
    r = mailarchive(home, "import", "eml", str(src), json_out=True).result
    assert (r["seen"], r["archived"], r["skipped"]) == (3, 3, 3)
    skipped = {x["ref"]: x["message"] for x in r["sources"][0]["problems"] if x["kind"] == "skipped"}
    assert set(skipped) == {"photo.eml", "setup.exe.eml", "notes.eml"}
    assert all(m.startswith("not mail") for m in skipped.values())
    stats = mailarchive(home, "stats", json_out=True).result
    assert stats["messages"] == 3 and stats["with_defects"] == 0

    # -- 8. the human summary names every decision kind (they add up to "seen") in human units
    p = mailarchive(home, "import", "eml", str(src))
    assert "3 seen = 0 archived (0 new, 0 id-conflict) + 3 duplicates (3 exact-duplicate, 0 duplicate) + 0 journal-merge" in p.stderr
    assert " B in " in p.stderr and "0.0 MB" not in p.stderr

    # ... and an export that selects nothing says so: a folder or domain nobody has is a usage error
    p = mailarchive(home, "export", "eml", str(tmp_path / "out"), "--folder", "Archiv/2019", check=2)
    assert "no archived mail matches --folder 'Archiv/2019'" in p.stderr
    p = mailarchive(home, "export", "mbox", str(tmp_path / "out.mbox"), "--domain", "exmaple.com", check=2)
    assert "--domain 'exmaple.com'" in p.stderr
    assert "lists domains with" in p.stderr and "folders" not in p.stderr  # the hint fits the option named
    p = mailarchive(home, "export", "eml", str(tmp_path / "out"), "--since", "2020-01-01", "--until", "2019-01-01",
                    check=2)  # swapped dates: a usage error naming both, not "the selection matches no message"
    assert "the start date 2020-01-01 lies after the end date 2019-01-01" in p.stderr and not (tmp_path / "out").exists()
    p = mailarchive(home, "export", "eml", str(tmp_path / "out"), "--since", "2099-01-01", check=1)
    assert "the selection matches no message (--since 2099-01-01)" in p.stderr and not (tmp_path / "out").exists()

    raw = mailarchive(home, "import", "eml", "--force-raw", str(src / "photo.eml"), json_out=True).result
    assert raw["archived"] == 1 and raw["skipped"] == 0

    # -- 4. a wrong SMB password is a rejected login: 4, like IMAP, POP3 and the TSA; the help agrees
    p = mailarchive(home, "import", "share", smb_location, env={"MAILARCHIVE_SMB_PASSWORD": "wrong"}, check=4)
    assert "wrong user name or password" in p.stderr
    p = mailarchive(home, "mirror", "--help")
    assert "4    login rejected" in p.stdout and "(network, auth, I/O)" not in p.stdout

    # -- 5. a share that does not exist is named at once (not a 60 s timeout): usage error 2
    for args in (("mirror", f"{no_share}/mirror"), ("media", "add", f"{no_share}/m2")):
        started = time.monotonic()
        p = mailarchive(home, *args, check=2)
        assert time.monotonic() - started < 30  # the SMB timeout is 60 s; the answer must not wait for it
        assert "share 'no-such-share' does not exist" in p.stderr

    # -- 3. mirror before any catalog backup makes one first and says so; the mirror restores
    mirror_url = f"{smb_location}/mirror"
    p = mailarchive(home, "mirror", mirror_url)
    assert "Catalog backup made first (there is no catalog backup yet)" in p.stderr and "newest backup None" not in p.stderr
    r = mailarchive(home, "mirror", mirror_url, json_out=True).result
    assert r["backup_made"] is None and r["newest_backup"]  # nothing changed since: no second backup
    restored = mailarchive(tmp_path / "unused", "restore", "--from", mirror_url, "--key-backup", str(kb),
                           "--archive", str(tmp_path / "restored"), json_out=True).result
    assert restored["status"] == "restored" and restored["messages"] == 4

    # -- 14. media list shows the restored medium's location (the mirror share) whole, also into a pipe
    monkeypatch.delenv("COLUMNS")
    p = mailarchive(tmp_path / "restored", "media", "list", "--no-check")
    location = restored["media"][0]["location"]
    assert len(location) > 60 and location in p.stdout and "…" not in p.stdout
    monkeypatch.setenv("COLUMNS", "1000")

    # ... and a mirror without catalog backup or config snapshot is named as such, not blamed on the key
    bare = samba.share_dir / smb_location.rsplit("/", 1)[1] / "bare"
    shutil.copytree(samba.share_dir / smb_location.rsplit("/", 1)[1] / "mirror", bare)
    for d in bare.glob("medium-*"):
        shutil.rmtree(d / "db-backups")
        shutil.rmtree(d / "config")
    for p_ in [bare, *bare.rglob("*")]:
        shutil.chown(p_, user=samba.user)
    p = mailarchive(tmp_path / "unused", "restore", "--from", f"{smb_location}/bare", "--key-backup", str(kb),
                    "--archive", str(tmp_path / "restored-2"), check=None)
    assert p.returncode != 0
    assert "no catalog backup and no config snapshot" in p.stderr and "opens with this key" not in p.stderr

    # -- 9. the config file: a secret typed on the command line is refused; stored sealed, the mirror
    #       runs with no DEST and no password in the environment, and so do the printed cron lines
    pw_file = tmp_path / "smb-password"
    pw_file.write_text(samba.password + "\n")
    p = mailarchive(home, "config", "set", "mirror.password", samba.password, check=2)
    assert samba.password not in (home / "archive.toml").read_text()
    mailarchive(home, "config", "set", "mirror.dest", f"{smb_location}/nightly")
    mailarchive(home, "config", "set", "mirror.password", "--value-file", str(pw_file))
    mailarchive(home, "config", "set", "log_file", str(tmp_path / "mailarchive.log"))
    assert samba.password not in (home / "archive.toml").read_text()  # sealed, not in clear
    listed = mailarchive(home, "config", "list").stdout
    assert "mirror.dest" in listed and "(sealed)" in listed and samba.password not in listed
    assert mailarchive(home, "config", "get", "mirror.dest").stdout.strip() == f"{smb_location}/nightly"
    bare_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    lines = [ln for ln in mailarchive(home, "schedule", "--print").stdout.splitlines() if ln and not ln.startswith("#")]
    mirror_lines = [ln for ln in lines if " mirror" in ln]
    assert mirror_lines and all("--log-file" in ln for ln in lines)
    job = mirror_lines[0].split(None, 5)[5].replace("\\%", "%")  # the command part of the crontab line
    run = subprocess.run(["/bin/sh", "-c", job], env=bare_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (job, run.stdout, run.stderr)
    nightly = samba.share_dir / smb_location.rsplit("/", 1)[1] / "nightly"
    assert list(nightly.rglob("*.pack")) and list(nightly.rglob("*.dbk"))
    assert "event=end exit=0" in (tmp_path / "mailarchive.log").read_text()


def test_import_eml_given_outlook_files_or_a_compressed_mbox_lists_each_as_an_error(tmp_path):
    """Before, each of these was archived as one "message" of binary bytes (defects no-headers, nul-bytes),
    exit 0: a PST store, a .msg item, a winmail.dat and a gzip'd mbox hold mail that another import reads."""
    import gzip

    from tests.corpora import corpora_dir

    outlook = corpora_dir() / "d-pst-msg"
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(outlook / "pstsdk" / "sample1.pst", src / "old.pst")
    shutil.copy(outlook / "aspose-email" / "msg" / "Contact.msg", src / "item.msg")
    shutil.copy(outlook / "mimekit-tnef" / "body.tnef", src / "winmail.dat")
    (src / "box.mbox.gz").write_bytes(gzip.compress(b"From a@b Mon Jan  7 09:15:00 2019\n" + _mail(1)))
    (src / "ok.eml").write_bytes(_mail(2))
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    for args in (["--dry-run"], []):
        r = mailarchive(home, "import", "eml", *args, str(src), json_out=True, check=1).result
        errors = {p["ref"]: p["message"] for p in r["sources"][0]["problems"] if p["kind"] == "error"}
        assert set(errors) == {"old.pst", "item.msg", "winmail.dat", "box.mbox.gz"}, r
        assert "Outlook PST/OST store" in errors["old.pst"] and "TNEF" in errors["winmail.dat"]
        assert "gzip-compressed mbox" in errors["box.mbox.gz"] and "--force-raw" in errors["item.msg"]
    assert mailarchive(home, "stats", json_out=True).result["messages"] == 1
    # what the messages point to reads them
    assert mailarchive(home, "import", "mbox", str(src / "box.mbox.gz"), json_out=True).result["archived"] == 1
